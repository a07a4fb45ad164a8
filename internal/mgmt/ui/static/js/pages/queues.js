// Queues: the list with a form to declare one, and a page per queue to
// read, publish, get messages, purge and delete.

import { apiPath, del, get, put } from '../api.js';
import { actionButton, facts, field, h, onSubmit, panel, say, select, setOptions, table } from '../dom.js';
import { bytes, count, features, parseLines, rate, toLines } from '../format.js';
import { bindingsPanel, getForm, publishForm } from '../messages.js';
import { pagedPanel } from '../paged.js';
import { featurePills, routeTo, vhostOptions } from './common.js';

/** The queues page. */
export function queuesPage(ctx) {
  const list = pagedPanel('Queues', [
    { label: 'Virtual host', value: (q) => q.vhost },
    { label: 'Name', value: (q) => h('a', { href: routeTo('queues', q.vhost, q.name) }, q.name) },
    { label: 'Type', value: (q) => q.type },
    { label: 'Node', value: (q) => q.node },
    { label: 'Features', value: (q) => featurePills(features(q)) },
    { label: 'State', value: (q) => h('span', { class: `pill ${q.state === 'running' ? 'good' : 'warn'}` }, q.state) },
    { label: 'Ready', value: (q) => count(q.messages_ready), num: true },
    { label: 'Unacked', value: (q) => count(q.messages_unacknowledged), num: true },
    { label: 'Total', value: (q) => h('span', { data: { messages: q.name } }, count(q.messages)), num: true },
    { label: 'Consumers', value: (q) => count(q.consumers), num: true },
    { label: 'Incoming', value: (q) => rate(q.message_stats?.publish_details), num: true },
    { label: 'Delivered', value: (q) => rate(q.message_stats?.deliver_get_details), num: true },
    { label: 'Acked', value: (q) => rate(q.message_stats?.ack_details), num: true },
  ], { path: '/queues', empty: 'No queues yet: add one below.', reload: ctx.refreshNow });

  const form = addForm(ctx);
  const el = h('div', {}, h('h1', {}, 'Queues'), list.el, panel('Add a queue', {}, form));

  async function refresh() {
    const [, vhosts] = await Promise.all([list.refresh(), get('/vhosts')]);
    setOptions(form.elements.vhost, vhostOptions(vhosts), '/');
  }

  return { title: 'Queues', el, refresh };
}

function addForm(ctx) {
  const form = h('form', { id: 'add-queue', class: 'form' },
    field('Virtual host', select('vhost', [], '/')),
    field('Name', h('input', { name: 'name', required: true })),
    field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
    field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false'),
      'Deleted when its last consumer goes'),
    field('Arguments', h('textarea', { name: 'arguments', rows: 3, placeholder: 'x-message-ttl = 60000\nx-dead-letter-exchange = dlx' }),
      'x-message-ttl, x-max-length, x-overflow, x-dead-letter-exchange, x-dead-letter-routing-key, …'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add queue')));
  return onSubmit(form, async (v) => {
    await put(apiPath('queues', v.vhost, v.name), {
      durable: v.durable === 'true',
      auto_delete: v.auto_delete === 'true',
      arguments: parseLines(v.arguments),
    });
    form.elements.name.value = '';
    await ctx.refreshNow();
    return `Queue ${v.name} declared.`;
  });
}

/** The page of one queue. */
export function queuePage(ctx, vhost, name) {
  const details = h('div', { id: 'queue-details' });
  const consumers = h('div');
  const bindings = bindingsPanel({ vhost, kind: 'q', name, ctx });
  const status = h('p', { class: 'status', role: 'alert', hidden: true });
  const report = (text) => say(status, 'error', text);
  const el = h('div', {},
    h('h1', {}, `Queue ${name}`, h('span', { class: 'muted sub' }, ` in virtual host ${vhost}`)),
    panel('Details', {}, details),
    h('div', { class: 'two' },
      panel('Publish a message', {}, publishForm({ id: 'publish-message', vhost, exchange: '', routingKey: name, after: ctx.refreshNow })),
      panel('Get messages', {}, getForm({ id: 'get-messages', vhost, queue: name, after: ctx.refreshNow }))),
    panel('Consumers', {}, consumers),
    bindings.el,
    panel('Purge or delete', {},
      h('p', {}, 'Purging drops every ready message; deleting removes the queue and its messages.'),
      h('div', { class: 'actions' },
        actionButton('Purge messages', {
          question: `Drop every ready message in ${name}?`,
          action: async () => {
            await del(apiPath('queues', vhost, name, 'contents'));
            await ctx.refreshNow();
          },
          report,
        }),
        actionButton('Delete queue', {
          cls: 'danger',
          question: `Delete queue ${name} and its messages?`,
          action: async () => {
            await del(apiPath('queues', vhost, name));
            ctx.go(routeTo('queues'));
          },
          report,
        })),
      status));

  async function refresh() {
    const q = await get(apiPath('queues', vhost, name));
    details.replaceChildren(h('div', { class: 'two' }, counts(q), about(q)));
    consumers.replaceChildren(consumerTable(q.consumer_details ?? []));
    await bindings.refresh();
  }

  return { title: `Queue ${name}`, el, refresh };
}

function counts(q) {
  const ms = q.message_stats ?? {};
  return facts([
    ['Ready', count(q.messages_ready), 'messages_ready'],
    ['Unacknowledged', count(q.messages_unacknowledged), 'messages_unacknowledged'],
    ['Total', count(q.messages), 'messages'],
    ['Ready bytes', bytes(q.message_bytes_ready)],
    ['Incoming', rate(ms.publish_details)],
    ['Delivered and got', rate(ms.deliver_get_details)],
    ['Acknowledged', rate(ms.ack_details)],
  ]);
}

function about(q) {
  return facts([
    ['State', q.state],
    ['Type', q.type],
    ['Features', featurePills(features(q))],
    ['Arguments', toLines(q.arguments) || '—'],
    ['Policy', [q.policy, q.operator_policy && `operator: ${q.operator_policy}`].filter(Boolean).join(', ') || '—'],
    ['Policy settings', toLines(q.effective_policy_definition) || '—'],
    ['Consumers', count(q.consumers)],
    ['Exclusive owner', q.owner_pid_details?.name],
    ['Node', q.node],
  ]);
}

function consumerTable(list) {
  return table([
    { label: 'Channel', value: (c) => c.channel_details?.name },
    { label: 'Consumer tag', value: (c) => c.consumer_tag },
    { label: 'Ack required', value: (c) => (c.ack_required ? 'yes' : 'no') },
    { label: 'Exclusive', value: (c) => (c.exclusive ? 'yes' : 'no') },
    { label: 'Prefetch', value: (c) => count(c.prefetch_count), num: true },
    { label: 'Status', value: (c) => c.activity_status ?? '—' },
  ], list, 'No consumers.');
}
