// Pieces several pages share.

import { h } from '../dom.js';

/** The UI's address of a page: "#/queues/%2F/name". */
export function routeTo(...segments) {
  return `#/${segments.map((s) => encodeURIComponent(s)).join('/')}`;
}

/** Options of a vhost select from GET /api/vhosts. */
export function vhostOptions(vhosts) {
  return (vhosts ?? []).map((v) => v.name);
}

/** Feature letters [short, long] as small labels with the long text as title. */
export function featurePills(list) {
  if (list.length === 0) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'features' }, list.map(([short, long]) => h('abbr', { class: 'feature', title: long }, short)));
}
