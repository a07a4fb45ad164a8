// Nodes: each node's resources and alarms.

import { get } from '../api.js';
import { facts, h, panel } from '../dom.js';
import { bytes, count, duration } from '../format.js';

/** The nodes page. */
export function nodesPage() {
  const list = h('div');
  const el = h('div', {}, h('h1', {}, 'Nodes'), list);

  async function refresh() {
    const nodes = await get('/nodes');
    list.replaceChildren(...nodes.map(nodePanel));
  }

  return { title: 'Nodes', el, refresh };
}

function nodePanel(n) {
  return panel(n.name, { extra: state(n) },
    h('div', { class: 'two' },
      h('div', {},
        gauge('Memory', n.mem_used, n.mem_limit, n.mem_alarm, `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} high watermark`),
        diskGauge(n)),
      facts([
        ['Uptime', duration(n.uptime)],
        ['Processors', count(n.processors)],
        ['Goroutines', count(n.proc_used)],
        ['Client sockets', count(n.sockets_used)],
        ['Garbage collections', count(n.gc_num)],
        ['Process id', n.os_pid],
        ['Versions', (n.applications ?? []).map((a) => `${a.name} ${a.version}`).join(', ')],
      ])));
}

function state(n) {
  const alarms = [n.mem_alarm && 'memory alarm', n.disk_free_alarm && 'disk alarm'].filter(Boolean);
  if (!n.running) return h('span', { class: 'pill bad' }, 'not running');
  if (alarms.length) return h('span', { class: 'pill bad' }, alarms.join(', '));
  return h('span', { class: 'pill good' }, 'running');
}

/**
 * Free disk space: the bar fills as free space shrinks towards the limit
 * at which publishers are blocked. A node that keeps no data on disk
 * reports nothing to measure.
 */
function diskGauge(n) {
  if (!n.disk_free && !n.disk_free_alarm) {
    return gauge('Disk space', 0, 0, false, `not measured, limit ${bytes(n.disk_free_limit)}`);
  }
  return gauge('Disk space', n.disk_free_limit, n.disk_free, n.disk_free_alarm,
    `${bytes(n.disk_free)} free, limit ${bytes(n.disk_free_limit)}`);
}

/** A bar of used over limit, red when the alarm is on. */
function gauge(label, used, limit, alarm, text) {
  const frac = limit > 0 ? Math.min(1, used / limit) : 0;
  const fill = h('span', { class: `bar-fill${alarm ? ' bad' : ''}` });
  fill.style.width = `${(frac * 100).toFixed(1)}%`;
  return h('div', { class: 'gauge' },
    h('div', { class: 'gauge-head' }, h('strong', {}, label), h('span', { class: 'muted' }, text)),
    h('span', { class: 'bar' }, fill));
}
