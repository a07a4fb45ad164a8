// Exchanges: the list with a form to declare one, and a page per exchange
// with its bindings, a publish form and deletion.

import { apiPath, del, get, put } from '../api.js';
import { actionButton, facts, field, h, onSubmit, panel, say, select, setOptions } from '../dom.js';
import { exchangeLabel, features, parseLines, toLines } from '../format.js';
import { bindingsPanel, publishForm } from '../messages.js';
import { pagedPanel } from '../paged.js';
import { featurePills, routeTo, vhostOptions } from './common.js';

/** The URL segment of an exchange: the default one has a stand-in name. */
export function exchangeSlug(name) {
  return name === '' ? 'amq.default' : name;
}

/** The exchanges page. */
export function exchangesPage(ctx) {
  const list = pagedPanel('Exchanges', [
    { label: 'Virtual host', value: (x) => x.vhost },
    { label: 'Name', value: (x) => h('a', { href: routeTo('exchanges', x.vhost, exchangeSlug(x.name)) }, exchangeLabel(x.name)) },
    { label: 'Type', value: (x) => x.type },
    { label: 'Features', value: (x) => featurePills(features(x)) },
    { label: '', value: (x) => deleteButton(x) },
  ], { path: '/exchanges', empty: 'No exchanges.', reload: ctx.refreshNow });

  function deleteButton(x) {
    if (x.name === '' || x.name.startsWith('amq.')) return null;
    return actionButton('Delete', {
      cls: 'danger',
      question: `Delete exchange ${x.name} in ${x.vhost}?`,
      action: async () => {
        await del(apiPath('exchanges', x.vhost, x.name));
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  const form = addForm(ctx);
  const el = h('div', {}, h('h1', {}, 'Exchanges'), list.el, panel('Add an exchange', {}, form));

  async function refresh() {
    const [, vhosts] = await Promise.all([list.refresh(), get('/vhosts')]);
    setOptions(form.elements.vhost, vhostOptions(vhosts), '/');
  }

  return { title: 'Exchanges', el, refresh };
}

function addForm(ctx) {
  const types = (ctx.info.exchange_types ?? []).map((t) => t.name);
  const form = h('form', { id: 'add-exchange', class: 'form' },
    field('Virtual host', select('vhost', [], '/')),
    field('Name', h('input', { name: 'name', required: true })),
    field('Type', select('type', types.length ? types : ['direct', 'fanout', 'headers', 'topic'], 'direct')),
    field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
    field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false'),
      'Deleted when its last binding goes'),
    field('Internal', select('internal', [['false', 'No'], ['true', 'Yes']], 'false'),
      'Only other exchanges may publish to it'),
    field('Arguments', h('textarea', { name: 'arguments', rows: 2, placeholder: 'alternate-exchange = my-ae' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add exchange')));
  return onSubmit(form, async (v) => {
    await put(apiPath('exchanges', v.vhost, v.name), {
      type: v.type,
      durable: v.durable === 'true',
      auto_delete: v.auto_delete === 'true',
      internal: v.internal === 'true',
      arguments: parseLines(v.arguments),
    });
    form.elements.name.value = '';
    await ctx.refreshNow();
    return `Exchange ${v.name} declared.`;
  });
}

/** The page of one exchange. */
export function exchangePage(ctx, vhost, slug) {
  const name = slug === 'amq.default' ? '' : slug;
  const details = h('div');
  const bindings = bindingsPanel({ vhost, kind: 'e', name, ctx });
  const status = h('p', { class: 'status', hidden: true });
  const el = h('div', {},
    h('h1', {}, `Exchange ${exchangeLabel(name)}`, h('span', { class: 'muted sub' }, ` in virtual host ${vhost}`)),
    panel('Details', {}, details),
    bindings.el,
    panel('Publish a message', {}, publishForm({ id: 'publish-message', vhost, exchange: name, after: ctx.refreshNow })),
    name === '' || name.startsWith('amq.') ? null : panel('Delete', { closed: true },
      h('p', {}, 'Deleting the exchange removes its bindings too.'),
      actionButton('Delete this exchange', {
        cls: 'danger',
        question: `Delete exchange ${name}?`,
        action: async () => {
          await del(apiPath('exchanges', vhost, name));
          ctx.go(routeTo('exchanges'));
        },
        report: (text) => say(status, 'error', text),
      }), status));

  async function refresh() {
    const x = await get(apiPath('exchanges', vhost, slug));
    details.replaceChildren(facts([
      ['Type', x.type],
      ['Features', featurePills(features(x))],
      ['Arguments', toLines(x.arguments) || '—'],
    ]));
    await bindings.refresh();
  }

  return { title: `Exchange ${exchangeLabel(name)}`, el, refresh };
}
