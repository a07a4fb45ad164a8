// Connections (which may be closed from here) and channels.

import { apiPath, del } from '../api.js';
import { actionButton, h } from '../dom.js';
import { bytes, count, when } from '../format.js';
import { pagedPanel } from '../paged.js';

const CLOSE_REASON = 'Closed from the warren management UI';

/** The connections page. */
export function connectionsPage(ctx) {
  const list = pagedPanel('Connections', [
    { label: 'Name', value: (c) => c.name },
    { label: 'Node', value: (c) => c.node },
    { label: 'Virtual host', value: (c) => c.vhost },
    { label: 'User', value: (c) => c.user },
    { label: 'State', value: (c) => stateLabel(c.state) },
    { label: 'Client', value: client },
    { label: 'Channels', value: (c) => count(c.channels), num: true },
    { label: 'From client', value: (c) => `${bytes(c.recv_oct_details?.rate ?? 0)}/s`, num: true },
    { label: 'To client', value: (c) => `${bytes(c.send_oct_details?.rate ?? 0)}/s`, num: true },
    { label: 'Connected', value: (c) => when(c.connected_at) },
    { label: '', value: (c) => closeButton(c) },
  ], { path: '/connections', empty: 'No client is connected.', reload: ctx.refreshNow });

  function closeButton(c) {
    return actionButton('Close', {
      cls: 'danger',
      question: `Close connection ${c.name}?`,
      action: async () => {
        await del(apiPath('connections', c.name), { 'X-Reason': CLOSE_REASON });
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  return { title: 'Connections', el: h('div', {}, h('h1', {}, 'Connections'), list.el), refresh: list.refresh };
}

/** The channels page. */
export function channelsPage(ctx) {
  const list = pagedPanel('Channels', [
    { label: 'Channel', value: (c) => c.name },
    { label: 'Node', value: (c) => c.node },
    { label: 'Virtual host', value: (c) => c.vhost },
    { label: 'User', value: (c) => c.user },
    { label: 'Mode', value: mode },
    { label: 'State', value: (c) => stateLabel(c.state) },
    { label: 'Consumers', value: (c) => count(c.consumer_count), num: true },
    { label: 'Prefetch', value: (c) => count(c.prefetch_count), num: true },
    { label: 'Unacked', value: (c) => count(c.messages_unacknowledged), num: true },
    { label: 'Unconfirmed', value: (c) => count(c.messages_unconfirmed), num: true },
    { label: 'Published', value: (c) => count(c.message_stats?.publish ?? 0), num: true },
    { label: 'Delivered', value: (c) => count(c.message_stats?.deliver_get ?? 0), num: true },
    { label: 'Acked', value: (c) => count(c.message_stats?.ack ?? 0), num: true },
  ], { path: '/channels', empty: 'No channel is open.', reload: ctx.refreshNow });

  return { title: 'Channels', el: h('div', {}, h('h1', {}, 'Channels'), list.el), refresh: list.refresh };
}

function client(c) {
  const p = c.client_properties ?? {};
  return [p.product, p.version].filter(Boolean).join(' ') || p.platform || '—';
}

function mode(c) {
  const m = [];
  if (c.confirm) m.push('confirm');
  if (c.transactional) m.push('transactional');
  return m.join(', ') || '—';
}

function stateLabel(state) {
  return h('span', { class: `pill ${state === 'running' ? 'good' : 'warn'}` }, state ?? '—');
}
