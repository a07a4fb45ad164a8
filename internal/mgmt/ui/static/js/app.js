// The application: sign-in, the menu, routing between pages by the URL's
// fragment ("#/queues/%2F/orders"), and the refresh timer. A page is
// {title, el, refresh(), redraw?()}: el is built once when the page opens,
// and refresh only replaces the parts that show data, so what the user
// types in a form survives every refresh.

import { ApiError, basicAuth, call, clearSession, describeError, get, saveSession, session } from './api.js';
import { h, say } from './dom.js';
import { clock } from './format.js';
import { adminPage } from './pages/admin.js';
import { channelsPage, connectionsPage } from './pages/connections.js';
import { exchangePage, exchangesPage } from './pages/exchanges.js';
import { nodesPage } from './pages/nodes.js';
import { overviewPage } from './pages/overview.js';
import { queuePage, queuesPage } from './pages/queues.js';

const REFRESH_KEY = 'warren.refresh';
const $ = (id) => document.getElementById(id);

/** Which page each first segment of the route opens, by segment count. */
const ROUTES = {
  '': { 0: overviewPage },
  nodes: { 0: nodesPage },
  connections: { 0: connectionsPage },
  channels: { 0: channelsPage },
  exchanges: { 0: exchangesPage, 2: exchangePage },
  queues: { 0: queuesPage, 2: queuePage },
  admin: { 0: adminPage, 1: adminPage },
};

const state = {
  ctx: null, // what pages get: the user, the node's details, navigation
  page: null,
  timer: 0,
  running: null, // the refresh under way, if any
};

function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', () => logout(''));
  const interval = $('refresh-interval');
  interval.value = localStorage.getItem(REFRESH_KEY) ?? '5';
  interval.addEventListener('change', () => {
    localStorage.setItem(REFRESH_KEY, interval.value);
    schedule();
  });
  window.addEventListener('hashchange', () => state.ctx && openPage());
  window.addEventListener('resize', () => state.page?.redraw?.());
  const s = session();
  if (s) enter(s.auth).catch((err) => logout(describeError(err)));
  else showLogin('');
}

async function onLogin(ev) {
  ev.preventDefault();
  const form = ev.target;
  const user = form.elements.username.value;
  const auth = basicAuth(user, form.elements.password.value);
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await enter(auth);
    form.reset();
  } catch (err) {
    showLogin(loginFailure(err));
  } finally {
    button.disabled = false;
  }
}

function loginFailure(err) {
  if (err instanceof ApiError && err.status === 401) return `Sign-in refused: ${err.reason || err.kind}.`;
  return describeError(err);
}

/** Checks credentials with whoami and opens the application. */
async function enter(auth) {
  const me = await call('GET', '/whoami', undefined, { auth });
  saveSession(auth, me.name);
  const info = await get('/overview');
  state.ctx = {
    user: me,
    info,
    is: (tag) => me.tags.includes(tag),
    go: (hash) => { location.hash = hash; },
    refreshNow,
  };
  showApp(me, info);
  openPage();
}

function showLogin(error) {
  $('app').hidden = true;
  $('login').hidden = false;
  say($('login-error'), 'error', error);
  $('login-username').focus();
}

function showApp(me, info) {
  $('login').hidden = true;
  $('app').hidden = false;
  $('user-info').textContent = `${me.name}${me.tags.length ? ` (${me.tags.join(', ')})` : ''}`;
  $('node-info').textContent = `${info.product_name} ${info.product_version} on ${info.node}`;
  const admin = me.tags.includes('administrator');
  for (const a of document.querySelectorAll('#nav a[data-need]')) {
    a.hidden = !admin && !me.tags.includes(a.dataset.need);
  }
}

/** Signs out: forgets the credentials and shows the sign-in form. */
function logout(reason) {
  clearTimeout(state.timer);
  clearSession();
  state.ctx = null;
  state.page = null;
  $('view').replaceChildren();
  showLogin(reason);
}

/** The route's segments, decoded: "#/queues/%2F/q" → ["queues", "/", "q"]. */
function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  return raw === '' ? [] : raw.split('/').map((s) => decodeURIComponent(s));
}

function openPage() {
  const [first = '', ...rest] = route();
  const make = ROUTES[first]?.[rest.length];
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.tab === (first || 'overview'));
  }
  state.page = make ? make(state.ctx, ...rest) : notFound();
  document.title = `${state.page.title} · warren`;
  $('updated').textContent = '';
  $('view').replaceChildren(state.page.el);
  refreshNow();
}

function notFound() {
  return {
    title: 'Not found',
    el: h('div', {}, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. '), h('a', { href: '#/' }, 'Back to the overview')),
    refresh: async () => {},
  };
}

/** Refreshes the page now and schedules the next refresh. */
async function refreshNow() {
  clearTimeout(state.timer);
  const page = state.page;
  if (!page) return;
  // One refresh at a time: a second request waits for the first and
  // then runs, so it sees what an action just changed.
  while (state.running) await state.running;
  if (page !== state.page) return;
  state.running = refresh(page);
  try {
    await state.running;
  } finally {
    state.running = null;
    schedule();
  }
}

async function refresh(page) {
  const banner = $('refresh-error');
  try {
    await page.refresh();
    say(banner, 'error', '');
    $('updated').textContent = `Updated ${clock()}`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && !(await signedIn())) {
      logout(`Signed out: ${err.reason || 'the node refused the credentials'}.`);
      return;
    }
    if (page === state.page) say(banner, 'error', `Could not load this page: ${describeError(err)}`);
  }
}

/**
 * Whether the node still takes the credentials. The API answers 401 both
 * for credentials it no longer takes and for a page the user's tags do not
 * allow; only the first ends the session.
 */
async function signedIn() {
  try {
    await get('/whoami');
    return true;
  } catch (err) {
    return !(err instanceof ApiError && err.status === 401);
  }
}

function schedule() {
  clearTimeout(state.timer);
  const secs = Number($('refresh-interval').value);
  if (secs > 0 && state.page) state.timer = setTimeout(refreshNow, secs * 1000);
}

start();
