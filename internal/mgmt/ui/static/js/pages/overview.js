// The overview: totals, the node, and charts of message rates and queued
// messages over the last ten minutes.

import { get } from '../api.js';
import { drawChart, levelPoints, ratePoints } from '../chart.js';
import { facts, h, panel, table } from '../dom.js';
import { count } from '../format.js';

const SAMPLES = '?msg_rates_age=600&msg_rates_incr=5&lengths_age=600&lengths_incr=5';

const RATE_SERIES = [
  { key: 'publish', label: 'Published', color: '#2f7ed8' },
  { key: 'deliver_get', label: 'Delivered and got', color: '#3a9d5d' },
  { key: 'ack', label: 'Acknowledged', color: '#e09a25', dash: true },
];

const LENGTH_SERIES = [
  { key: 'messages', label: 'Total', color: '#6d55a3', dash: true },
  { key: 'messages_ready', label: 'Ready', color: '#2f7ed8' },
  { key: 'messages_unacknowledged', label: 'Unacknowledged', color: '#d0503c' },
];

/** The overview page. */
export function overviewPage() {
  const tiles = h('div', { class: 'tiles' });
  const rates = chartBox('rates-chart');
  const lengths = chartBox('lengths-chart');
  const node = h('div');
  const el = h('div', {},
    h('h1', {}, 'Overview'),
    tiles,
    h('div', { class: 'two' },
      panel('Message rates', {}, rates.el),
      panel('Queued messages', {}, lengths.el)),
    panel('Node', {}, node));
  let last = null;

  function redraw() {
    if (!last) return;
    const rateSeries = RATE_SERIES.map((s) => ({ ...s, points: ratePoints(last.message_stats?.[`${s.key}_details`]?.samples) }));
    drawChart(rates.canvas, rateSeries, { format: (v) => `${trim(v)}/s` });
    showLegend(rates.legend, rateSeries, (s) => `${trim(s.points.at(-1)?.v ?? 0)}/s`);
    const lengthSeries = LENGTH_SERIES.map((s) => ({ ...s, points: levelPoints(last.queue_totals?.[`${s.key}_details`]?.samples) }));
    drawChart(lengths.canvas, lengthSeries, { format: (v) => count(v), integer: true });
    showLegend(lengths.legend, lengthSeries, (s) => count(last.queue_totals?.[s.key] ?? 0));
  }

  async function refresh() {
    last = await get(`/overview${SAMPLES}`);
    tiles.replaceChildren(...totals(last));
    node.replaceChildren(nodeFacts(last), listeners(last));
    redraw();
  }

  return { title: 'Overview', el, refresh, redraw };
}

function chartBox(id) {
  const canvas = h('canvas', { id, class: 'chart', role: 'img', 'aria-label': 'chart' });
  const legend = h('ul', { class: 'legend' });
  return { canvas, legend, el: h('div', { class: 'chart-box' }, canvas, legend) };
}

function showLegend(el, series, current) {
  el.replaceChildren(...series.map((s) => h('li', {},
    h('span', { class: 'swatch', data: { color: s.color } }),
    h('span', {}, s.label),
    h('strong', {}, current(s)))));
  for (const sw of el.querySelectorAll('.swatch')) sw.style.background = sw.dataset.color;
}

const tenths = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

/** A rate with a decimal only when it is small. */
function trim(v) {
  return v >= 10 ? count(v) : tenths.format(v);
}

function tile(label, value, id) {
  return h('div', { class: 'tile', id }, h('span', { class: 'tile-value' }, value), h('span', { class: 'tile-label' }, label));
}

function totals(o) {
  const t = o.object_totals ?? {};
  const q = o.queue_totals ?? {};
  return [
    tile('Connections', count(t.connections), 'total-connections'),
    tile('Channels', count(t.channels), 'total-channels'),
    tile('Exchanges', count(t.exchanges), 'total-exchanges'),
    tile('Queues', count(t.queues), 'total-queues'),
    tile('Consumers', count(t.consumers), 'total-consumers'),
    tile('Ready', count(q.messages_ready), 'total-ready'),
    tile('Unacked', count(q.messages_unacknowledged), 'total-unacked'),
    tile('Messages', count(q.messages), 'total-messages'),
  ];
}

function nodeFacts(o) {
  return facts([
    ['Node', o.node],
    ['Version', `${o.product_name ?? 'warren'} ${o.product_version ?? ''}`],
    ['Runtime', o.erlang_full_version ?? o.erlang_version],
    ['Statistics', `rates mode ${o.rates_mode ?? '—'}`],
  ]);
}

function listeners(o) {
  return table([
    { label: 'Protocol', value: (l) => l.protocol },
    { label: 'Bound to', value: (l) => l.ip_address },
    { label: 'Port', value: (l) => l.port, num: true },
  ], o.listeners ?? [], 'No listeners reported.');
}
