// Paged lists: the queues, exchanges, connections and channels pages ask
// the API for one page of a collection at a time, filtered and sorted by
// name on the node, so that a node with 10,000 queues sends 100 of them
// every refresh rather than all of them.

import { ApiError, describeError, get } from './api.js';
import { filterBox, h, panel, say, select, setOptions, table } from './dom.js';
import { count } from './format.js';

const PAGE_SIZES = ['100', '500'];
const TYPING_PAUSE = 300; // ms without a keystroke before the filter applies
const VIEW_KEY = 'warren.list';

/**
 * A panel listing the API collection at path (e.g. '/queues') one page at
 * a time, with a name filter (substring, or regular expression), page
 * controls above and below the table, and a page size. What the user chose
 * survives refreshes and leaving the page, for as long as the tab is open.
 * reload() is called when the user changes it; it should refresh the page,
 * which calls refresh() here. Returns {el, refresh(), report(text)}: report
 * shows a failed row action above the table.
 */
export function pagedPanel(title, columns, { path, empty, reload }) {
  const view = loadView(path);
  let lastPages = 1;
  const changed = (update) => {
    update(lastPages);
    saveView(path, view);
    reload();
  };

  const badge = h('span', { class: 'count' });
  const top = pageNav(view, changed);
  const bottom = pageNav(view, changed);
  const toolbar = h('div', { class: 'toolbar pager' },
    filterControls(view, changed), h('span', { class: 'spacer' }), top.range, top.nav, sizeControl(view, changed));
  const bottomBar = h('div', { class: 'toolbar pager pager-foot', hidden: true }, h('span', { class: 'spacer' }), bottom.range, bottom.nav);
  const refused = h('p', { class: 'status error filter-error', role: 'alert', hidden: true });
  const status = h('p', { class: 'status', role: 'alert', hidden: true });
  const holder = h('div', { class: 'table-wrap' });

  async function refresh() {
    const asked = { ...view };
    let data;
    try {
      data = await fetchPage(path, asked);
    } catch (err) {
      // A filter the node refuses (a bad regular expression) is the
      // user's to fix: say why here and leave the rest of the page be.
      if (!(err instanceof ApiError && err.status === 400 && asked.name)) throw err;
      showRefusal(describeError(err));
      return;
    }
    if (view.page === asked.page && data.page !== asked.page) {
      view.page = data.page;
      saveView(path, view);
    }
    show(data, asked.name);
  }

  function show(data, filter) {
    lastPages = data.page_count;
    refused.hidden = true;
    badge.textContent = count(data.total_count);
    showWhere(data, filter !== '');
    holder.replaceChildren(table(columns, data.items, filter ? `Nothing matches “${filter}”.` : empty));
  }

  function showRefusal(text) {
    refused.textContent = `The filter does not work: ${text}`;
    refused.hidden = false;
    showWhere(null, true);
    holder.replaceChildren(table(columns, [], 'Fix the filter to see the list.'));
  }

  function showWhere(data, filtered) {
    top.show(data, filtered);
    bottom.show(data, filtered);
    bottomBar.hidden = !data || data.page_count <= 1;
  }

  const el = panel(title, { extra: badge }, toolbar, refused, status, holder, bottomBar);
  return {
    el,
    refresh,
    report(text) {
      say(status, 'error', text);
    },
  };
}

/**
 * The name filter and its regex checkbox. changed(update) is called with
 * a function that updates view; the filter waits for a pause in typing.
 */
function filterControls(view, changed) {
  let typing = 0;
  const filter = filterBox(() => {
    clearTimeout(typing);
    typing = setTimeout(() => changed(() => {
      view.name = filter.value;
      view.page = 1;
    }), TYPING_PAUSE);
  });
  filter.value = view.name;
  const regex = h('input', { type: 'checkbox', name: 'use_regex', checked: view.regex });
  regex.addEventListener('change', () => changed(() => {
    view.regex = regex.checked;
    view.page = 1;
  }));
  return [filter, h('label', { class: 'check', title: 'Filter by regular expression' }, regex, ' Regex')];
}

/** The page size select. */
function sizeControl(view, changed) {
  const size = select('page_size', PAGE_SIZES, String(view.size));
  size.addEventListener('change', () => changed(() => {
    // Keep the first row shown on the page shown.
    const first = (view.page - 1) * view.size;
    view.size = Number(size.value);
    view.page = Math.floor(first / view.size) + 1;
  }));
  return h('label', {}, size, ' per page');
}

/**
 * The range line ("Showing 1–100 of 150") and the previous button, page
 * select and next button. changed(update) is called with a function that
 * updates view given the page count last seen. show(data, filtered) shows
 * where a page (null: none) is in the list.
 */
function pageNav(view, changed) {
  const range = h('span', { class: 'range muted' });
  const prev = h('button', { type: 'button', class: 'small prev', title: 'Previous page' }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'small next', title: 'Next page' }, 'Next ›');
  const page = select('page', []);
  const pageCount = h('span');
  const nav = h('span', { class: 'pages', hidden: true }, prev, h('label', {}, 'Page ', page, pageCount), next);
  prev.addEventListener('click', () => changed(() => { view.page = Math.max(1, view.page - 1); }));
  next.addEventListener('click', () => changed((pages) => { view.page = Math.min(pages, view.page + 1); }));
  page.addEventListener('change', () => changed(() => { view.page = Number(page.value); }));

  function show(data, filtered) {
    range.textContent = data ? rangeText(data, filtered) : '';
    const pages = data?.page_count ?? 0;
    nav.hidden = pages <= 1;
    if (nav.hidden) return;
    setOptions(page, Array.from({ length: pages }, (_, i) => String(i + 1)));
    page.value = String(data.page);
    pageCount.textContent = ` of ${count(pages)}`;
    prev.disabled = data.page <= 1;
    next.disabled = data.page >= pages;
  }

  return { range, nav, show };
}

/** "Showing 101–150 of 150 (filtered from 10,000)". */
function rangeText(d, filtered) {
  const from = filtered ? ` (filtered from ${count(d.total_count)})` : '';
  if (d.item_count === 0) return filtered ? `None of ${count(d.total_count)} match` : '';
  const first = (d.page - 1) * d.page_size + 1;
  return `Showing ${count(first)}–${count(first + d.item_count - 1)} of ${count(d.filtered_count)}${from}`;
}

/** The API path of one page of the collection at path. */
function pagePath(path, v) {
  const q = new URLSearchParams({ page: v.page, page_size: v.size, sort: 'name' });
  if (v.name) q.set('name', v.name);
  if (v.name && v.regex) q.set('use_regex', 'true');
  return `${path}?${q}`;
}

/**
 * Gets page v.page of the collection; when that page no longer exists
 * (the list shrank, or its filter now matches fewer), the last one that
 * does.
 */
async function fetchPage(path, v) {
  try {
    return await get(pagePath(path, v));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 400 && v.page > 1)) throw err;
  }
  const first = await get(pagePath(path, { ...v, page: 1 }));
  if (first.page_count <= 1) return first;
  return get(pagePath(path, { ...v, page: first.page_count }));
}

/** The page, filter and page size last chosen for the list at path. */
function loadView(path) {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(`${VIEW_KEY}${path}`)) ?? {};
  } catch {
    saved = {};
  }
  return {
    page: Number.isInteger(saved.page) && saved.page > 0 ? saved.page : 1,
    size: Number(PAGE_SIZES.includes(String(saved.size)) ? saved.size : PAGE_SIZES[0]),
    name: typeof saved.name === 'string' ? saved.name : '',
    regex: saved.regex === true,
  };
}

function saveView(path, view) {
  sessionStorage.setItem(`${VIEW_KEY}${path}`, JSON.stringify(view));
}
