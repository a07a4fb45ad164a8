// Small helpers to build the page from data without HTML strings, so that
// names coming from the node are always shown as text.

import { describeError } from './api.js';

const PROPERTIES = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'open', 'textContent', 'htmlFor']);

/**
 * Creates an element. props: class, text, on (event → handler), data
 * (dataset), the DOM properties above, anything else as an attribute.
 * Children may be nodes, strings, numbers, arrays, or null (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, val] of Object.entries(props ?? {})) {
    if (val === undefined || val === null || val === false) continue;
    if (key === 'class') el.className = val;
    else if (key === 'text') el.textContent = val;
    else if (key === 'on') for (const [ev, fn] of Object.entries(val)) el.addEventListener(ev, fn);
    else if (key === 'data') Object.assign(el.dataset, val);
    else if (PROPERTIES.has(key)) el[key] = val;
    else el.setAttribute(key, val === true ? '' : val);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** A collapsible panel with a title, open unless told otherwise. */
export function panel(title, props, ...children) {
  const { closed, id, extra } = props ?? {};
  return h('details', { class: 'panel', open: !closed, id },
    h('summary', {}, h('h2', {}, title), extra ?? null),
    h('div', { class: 'panel-body' }, ...children));
}

/**
 * A table. columns: [{label, value(row) → node or text, num (right
 * aligned), cls}]. Rows empty → one line saying `empty`.
 */
export function table(columns, rows, empty = 'Nothing to show.') {
  const head = h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : c.cls }, c.label)));
  const body = rows.length === 0
    ? [h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, empty))]
    : rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : c.cls }, c.value(r)))));
  return h('table', { class: 'grid' }, h('thead', {}, head), h('tbody', {}, body));
}

/** Definition list of [label, value, field] rows; field names the dd. */
export function facts(rows) {
  return h('dl', { class: 'facts' }, rows.map(([label, value, field]) => [
    h('dt', {}, label),
    h('dd', { data: field ? { field } : undefined }, value ?? '—'),
  ]));
}

/** A labelled form row: the label text and its control. */
export function field(label, control, hint) {
  return h('label', { class: 'field' },
    h('span', { class: 'label' }, label),
    control,
    hint ? h('span', { class: 'hint' }, hint) : null);
}

/** A select with options [value, label] or plain values. */
export function select(name, options, value) {
  const el = h('select', { name });
  setOptions(el, options, value);
  return el;
}

/**
 * Replaces a select's options, keeping the chosen value when it is still
 * offered, so a refresh never resets what the user picked.
 */
export function setOptions(el, options, fallback) {
  const keep = el.value || fallback;
  const pairs = options.map((o) => (Array.isArray(o) ? o : [o, o]));
  const same = pairs.length === el.options.length &&
    pairs.every(([v, l], i) => el.options[i].value === v && el.options[i].text === l);
  if (same) return;
  el.replaceChildren(...pairs.map(([v, l]) => h('option', { value: v }, l)));
  if (pairs.some(([v]) => v === keep)) el.value = keep;
}

/** The status line of a form, made on first use. */
export function statusOf(form) {
  let el = form.querySelector(':scope > .status');
  if (!el) {
    el = h('p', { class: 'status', role: 'status', hidden: true });
    form.append(el);
  }
  return el;
}

/** Shows kind ('ok' or 'error') and text in a status line; '' hides it. */
export function say(el, kind, text) {
  el.className = `status ${kind}`;
  el.textContent = text;
  el.hidden = !text;
}

/** The named controls' values: checkboxes give booleans. */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value;
  }
  return out;
}

/**
 * Runs action(values) when the form is submitted, with its button
 * disabled meanwhile, and shows the message it returns or its error.
 */
export function onSubmit(form, action) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const buttons = form.querySelectorAll('button');
    const status = statusOf(form);
    say(status, '', '');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const msg = await action(values(form), form);
      if (msg) say(status, 'ok', msg);
    } catch (err) {
      say(status, 'error', describeError(err));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
  return form;
}

/**
 * A button that asks first (when question is set), runs action, and
 * reports a failure through report(text).
 */
export function actionButton(label, { cls = '', question, action, report }) {
  const btn = h('button', { type: 'button', class: `small ${cls}` }, label);
  btn.addEventListener('click', async () => {
    if (question && !window.confirm(question)) return;
    btn.disabled = true;
    try {
      await action();
    } catch (err) {
      report(describeError(err));
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

/** A filter box that calls onChange as the user types. */
export function filterBox(onChange, placeholder = 'Filter by name') {
  return h('input', { type: 'search', class: 'filter', placeholder, 'aria-label': placeholder, on: { input: onChange } });
}

/**
 * A panel listing rows in a table with a name filter that survives
 * refreshes (options.filter false leaves it out). Returns {el, set(rows),
 * report(text)}: set shows new rows, report shows a failed row action above
 * the table.
 */
export function listPanel(title, columns, { empty, key = (r) => r.name ?? '', limit = 500, closed, filter: withFilter = true } = {}) {
  const total = h('span', { class: 'count' });
  const holder = h('div', { class: 'table-wrap' });
  const status = h('p', { class: 'status', role: 'alert', hidden: true });
  const filter = filterBox(render);
  let rows = [];

  function render() {
    const q = filter.value.trim().toLowerCase();
    const shown = q ? rows.filter((r) => key(r).toLowerCase().includes(q)) : rows;
    total.textContent = q ? `${shown.length} of ${rows.length}` : String(rows.length);
    const more = shown.length > limit ? h('p', { class: 'muted' }, `Showing the first ${limit}; filter to see the others.`) : null;
    holder.replaceChildren(...[table(columns, shown.slice(0, limit), empty), more].filter(Boolean));
  }

  const el = panel(title, { extra: total, closed }, withFilter ? h('div', { class: 'toolbar' }, filter) : null, status, holder);
  return {
    el,
    set(newRows) {
      rows = newRows ?? [];
      render();
    },
    report(text) {
      say(status, 'error', text);
    },
  };
}
