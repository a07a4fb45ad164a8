// Admin: users, virtual hosts, permissions and policies. Administrators
// see all four; policymakers only policies.

import { ApiError, apiPath, del, get, put } from '../api.js';
import { actionButton, field, h, listPanel, onSubmit, panel, select, setOptions } from '../dom.js';
import { count, parseLines, toLines } from '../format.js';
import { routeTo, vhostOptions } from './common.js';

const SECTIONS = [
  ['users', 'Users', usersSection, true],
  ['vhosts', 'Virtual hosts', vhostsSection, true],
  ['permissions', 'Permissions', permissionsSection, true],
  ['policies', 'Policies', policiesSection, false],
];

/** The admin page; section is one of SECTIONS' keys. */
export function adminPage(ctx, section) {
  const allowed = SECTIONS.filter(([, , , adminOnly]) => !adminOnly || ctx.is('administrator'));
  const current = allowed.find(([key]) => key === section) ?? allowed[0];
  const sub = h('nav', { class: 'subtabs' }, allowed.map(([key, label]) =>
    h('a', { href: routeTo('admin', key), class: key === current[0] ? 'active' : null }, label)));
  const body = current[2](ctx);
  return {
    title: current[1],
    el: h('div', {}, h('h1', {}, 'Admin'), sub, body.el),
    refresh: body.refresh,
  };
}

// ---- users

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

function usersSection(ctx) {
  const list = listPanel('Users', [
    { label: 'Name', value: (u) => u.name },
    { label: 'Tags', value: (u) => (u.tags.length ? u.tags.join(', ') : h('span', { class: 'muted' }, 'none: no management access')) },
    { label: 'Virtual hosts', value: (u) => u.vhosts.join(', ') || h('span', { class: 'muted' }, 'no access') },
    { label: '', value: (u) => h('span', { class: 'row-actions' }, editButton(u), deleteButton(u)) },
  ], { empty: 'No users.' });

  const form = userForm(ctx);

  function editButton(u) {
    return actionButton('Edit', {
      action: async () => {
        form.elements.name.value = u.name;
        form.elements.password.value = '';
        form.elements.tags.value = u.tags.join(', ');
        form.elements.name.focus();
      },
      report: list.report,
    });
  }

  function deleteButton(u) {
    const self = u.name === ctx.user.name;
    return actionButton('Delete', {
      cls: 'danger',
      question: self ? `Delete ${u.name}? That is the user you are signed in as.` : `Delete user ${u.name}?`,
      action: async () => {
        await del(apiPath('users', u.name));
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  async function refresh() {
    const [users, perms] = await Promise.all([get('/users'), get('/permissions')]);
    for (const u of users) u.vhosts = perms.filter((p) => p.user === u.name).map((p) => p.vhost);
    list.set(users);
  }

  return { el: h('div', {}, list.el, panel('Add or change a user', {}, form)), refresh };
}

function userForm(ctx) {
  const tags = h('input', { name: 'tags', placeholder: 'administrator, monitoring, …' });
  const quick = h('span', { class: 'tag-buttons' }, 'Add:', TAGS.map((t) =>
    h('button', { type: 'button', class: 'small link', on: { click: () => addTag(tags, t) } }, t)));
  const form = h('form', { id: 'user-form', class: 'form' },
    field('Username', h('input', { name: 'name', required: true, autocomplete: 'off' })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password' }),
      'Leave empty to keep the password of an existing user'),
    field('Tags', tags, quick),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save user')));
  return onSubmit(form, async (v) => {
    const body = { tags: v.tags };
    if (v.password) {
      body.password = v.password;
    } else {
      const existing = await existingUser(v.name);
      if (!existing) throw new Error('A new user needs a password.');
      body.password_hash = existing.password_hash;
      body.hashing_algorithm = existing.hashing_algorithm;
    }
    await put(apiPath('users', v.name), body);
    form.elements.password.value = '';
    await ctx.refreshNow();
    return `User ${v.name} saved.`;
  });
}

async function existingUser(name) {
  try {
    return await get(apiPath('users', name));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

function addTag(input, tag) {
  const list = input.value.split(',').map((t) => t.trim()).filter(Boolean);
  if (!list.includes(tag)) list.push(tag);
  input.value = list.join(', ');
}

// ---- virtual hosts

function vhostsSection(ctx) {
  const list = listPanel('Virtual hosts', [
    { label: 'Name', value: (v) => v.name },
    { label: 'Description', value: (v) => v.description },
    { label: 'Tags', value: (v) => (v.tags ?? []).join(', ') },
    { label: 'Ready', value: (v) => count(v.messages_ready), num: true },
    { label: 'Unacked', value: (v) => count(v.messages_unacknowledged), num: true },
    { label: 'Total', value: (v) => count(v.messages), num: true },
    { label: '', value: (v) => deleteButton(v) },
  ], { empty: 'No virtual hosts.' });

  function deleteButton(v) {
    return actionButton('Delete', {
      cls: 'danger',
      question: `Delete virtual host ${v.name} with all its exchanges, queues and messages?`,
      action: async () => {
        await del(apiPath('vhosts', v.name));
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  const form = h('form', { id: 'vhost-form', class: 'form' },
    field('Name', h('input', { name: 'name', required: true })),
    field('Description', h('input', { name: 'description' })),
    field('Tags', h('input', { name: 'tags', placeholder: 'comma separated' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add virtual host')));
  onSubmit(form, async (v) => {
    await put(apiPath('vhosts', v.name), { description: v.description, tags: v.tags });
    form.reset();
    await ctx.refreshNow();
    return `Virtual host ${v.name} added.`;
  });

  async function refresh() {
    list.set(await get('/vhosts'));
  }

  return { el: h('div', {}, list.el, panel('Add a virtual host', {}, form)), refresh };
}

// ---- permissions

function permissionsSection(ctx) {
  const list = listPanel('Permissions', [
    { label: 'User', value: (p) => p.user },
    { label: 'Virtual host', value: (p) => p.vhost },
    { label: 'Configure', value: (p) => h('code', {}, p.configure) },
    { label: 'Write', value: (p) => h('code', {}, p.write) },
    { label: 'Read', value: (p) => h('code', {}, p.read) },
    { label: '', value: (p) => clearButton(p) },
  ], { empty: 'No permissions set.', key: (p) => `${p.user} ${p.vhost}` });

  function clearButton(p) {
    return actionButton('Clear', {
      cls: 'danger',
      question: `Clear ${p.user}'s permissions in ${p.vhost}?`,
      action: async () => {
        await del(apiPath('permissions', p.vhost, p.user));
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  const form = h('form', { id: 'permission-form', class: 'form' },
    field('User', select('user', [])),
    field('Virtual host', select('vhost', [], '/')),
    field('Configure', h('input', { name: 'configure', value: '.*' }), 'Regular expression of resource names'),
    field('Write', h('input', { name: 'write', value: '.*' })),
    field('Read', h('input', { name: 'read', value: '.*' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set permission')));
  onSubmit(form, async (v) => {
    await put(apiPath('permissions', v.vhost, v.user), { configure: v.configure, write: v.write, read: v.read });
    await ctx.refreshNow();
    return `Permissions of ${v.user} in ${v.vhost} set.`;
  });

  async function refresh() {
    const [perms, users, vhosts] = await Promise.all([get('/permissions'), get('/users'), get('/vhosts')]);
    list.set(perms);
    setOptions(form.elements.user, users.map((u) => u.name), ctx.user.name);
    setOptions(form.elements.vhost, vhostOptions(vhosts), '/');
  }

  return { el: h('div', {}, list.el, panel('Set a permission', {}, form)), refresh };
}

// ---- policies

const APPLY_TO = [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges']];

function policiesSection(ctx) {
  const list = listPanel('Policies', [
    { label: 'Virtual host', value: (p) => p.vhost },
    { label: 'Name', value: (p) => p.name },
    { label: 'Pattern', value: (p) => h('code', {}, p.pattern) },
    { label: 'Applies to', value: (p) => p['apply-to'] },
    { label: 'Definition', value: (p) => h('span', { class: 'kvs' }, toLines(p.definition)) },
    { label: 'Priority', value: (p) => count(p.priority), num: true },
    { label: '', value: (p) => h('span', { class: 'row-actions' }, editButton(p), deleteButton(p)) },
  ], { empty: 'No policies.' });

  const form = policyForm(ctx);

  function editButton(p) {
    return actionButton('Edit', {
      action: async () => {
        const f = form.elements;
        f.vhost.value = p.vhost;
        f.name.value = p.name;
        f.pattern.value = p.pattern;
        f['apply-to'].value = p['apply-to'];
        f.priority.value = String(p.priority ?? 0);
        f.definition.value = toLines(p.definition);
      },
      report: list.report,
    });
  }

  function deleteButton(p) {
    return actionButton('Delete', {
      cls: 'danger',
      question: `Delete policy ${p.name} in ${p.vhost}?`,
      action: async () => {
        await del(apiPath('policies', p.vhost, p.name));
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  async function refresh() {
    const [policies, vhosts] = await Promise.all([get('/policies'), get('/vhosts')]);
    list.set(policies);
    setOptions(form.elements.vhost, vhostOptions(vhosts), '/');
  }

  return { el: h('div', {}, list.el, panel('Add or change a policy', {}, form)), refresh };
}

function policyForm(ctx) {
  const form = h('form', { id: 'policy-form', class: 'form' },
    field('Virtual host', select('vhost', [], '/')),
    field('Name', h('input', { name: 'name', required: true })),
    field('Pattern', h('input', { name: 'pattern', required: true, placeholder: '^orders\\.' }),
      'Regular expression matched against queue or exchange names'),
    field('Apply to', select('apply-to', APPLY_TO, 'all')),
    field('Priority', h('input', { name: 'priority', type: 'number', value: '0' }), 'The highest priority matching policy wins'),
    field('Definition', h('textarea', { name: 'definition', rows: 4, required: true, placeholder: 'max-length = 1000\nmessage-ttl = 60000' }),
      'message-ttl, max-length, overflow, dead-letter-exchange, expires, …'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save policy')));
  return onSubmit(form, async (v) => {
    await put(apiPath('policies', v.vhost, v.name), {
      pattern: v.pattern,
      definition: parseLines(v.definition),
      priority: Number(v.priority) || 0,
      'apply-to': v['apply-to'],
    });
    await ctx.refreshNow();
    return `Policy ${v.name} saved.`;
  });
}
