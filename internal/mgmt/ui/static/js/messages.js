// The forms that publish and get messages, shared by the exchange and
// queue pages, and the panel of bindings both pages show.

import { apiPath, del, get, post } from './api.js';
import { actionButton, field, h, listPanel, onSubmit, select } from './dom.js';
import { count, exchangeLabel, parseLines, show, toLines } from './format.js';

/**
 * A form publishing to exchange in vhost. When routingKey is given the
 * key is fixed (publishing to a queue through the default exchange).
 * after runs once a message went out.
 */
export function publishForm({ id, vhost, exchange, routingKey, after }) {
  const keyField = routingKey === undefined
    ? field('Routing key', h('input', { name: 'routing_key' }))
    : h('p', { class: 'muted' }, `Sent through the default exchange with routing key “${routingKey}”.`);
  const form = h('form', { id, class: 'form' },
    keyField,
    field('Delivery mode', select('delivery_mode', [['1', '1 — not persistent'], ['2', '2 — persistent']], '2')),
    field('Headers', h('textarea', { name: 'headers', rows: 2, placeholder: 'key = value, one per line' })),
    field('Properties', h('textarea', { name: 'properties', rows: 2, placeholder: 'content_type = text/plain' }),
      'content_type, correlation_id, reply_to, expiration, message_id, priority, type, …'),
    field('Payload', h('textarea', { name: 'payload', rows: 4 })),
    field('Payload encoding', select('payload_encoding', [['string', 'text'], ['base64', 'base64']], 'string')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Publish message')));
  return onSubmit(form, async (v) => {
    const properties = parseLines(v.properties);
    const headers = parseLines(v.headers);
    properties.delivery_mode = Number(v.delivery_mode);
    if (Object.keys(headers).length) properties.headers = headers;
    const res = await post(apiPath('exchanges', vhost, exchange || 'amq.default', 'publish'), {
      routing_key: routingKey ?? v.routing_key,
      payload: v.payload,
      payload_encoding: v.payload_encoding,
      properties,
    });
    await after?.();
    if (res && res.routed === false) throw new Error('Published, but no queue took the message: nothing is bound for that routing key.');
    return 'Message published.';
  });
}

const ACK_MODES = [
  ['ack_requeue_true', 'Look only: put the messages back'],
  ['reject_requeue_false', 'Take them: reject without requeue'],
  ['ack_requeue_false', 'Take them: acknowledge'],
  ['reject_requeue_true', 'Reject and requeue'],
];

/** A form getting messages from a queue, showing them below itself. */
export function getForm({ id, vhost, queue, after }) {
  const results = h('div', { class: 'messages' });
  const form = h('form', { id, class: 'form' },
    field('Ack mode', select('ackmode', ACK_MODES, 'ack_requeue_true')),
    field('Encoding', select('encoding', [['auto', 'text where possible, else base64'], ['base64', 'base64']], 'auto')),
    field('Messages', h('input', { name: 'count', type: 'number', min: 1, value: '1' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Get messages')));
  onSubmit(form, async (v) => {
    const msgs = await post(apiPath('queues', vhost, queue, 'get'), {
      count: Number(v.count) || 1, ackmode: v.ackmode, encoding: v.encoding, truncate: 50000,
    });
    results.replaceChildren(...msgs.map(messageCard));
    await after?.();
    return msgs.length ? `${msgs.length} message${msgs.length > 1 ? 's' : ''} read.` : 'The queue is empty.';
  });
  return h('div', {}, form, results);
}

function messageCard(m, i) {
  const props = { ...m.properties };
  const headers = props.headers;
  delete props.headers;
  return h('article', { class: 'message' },
    h('header', {}, h('strong', {}, `Message ${i + 1}`),
      h('span', { class: 'muted' }, ` from ${exchangeLabel(m.exchange)}, routing key “${m.routing_key}”`),
      m.redelivered ? h('span', { class: 'pill warn' }, 'redelivered') : null,
      h('span', { class: 'muted right' }, `${count(m.message_count)} more in the queue when read`)),
    Object.keys(props).length ? h('p', { class: 'kvs' }, toLines(props)) : null,
    headers && Object.keys(headers).length ? h('p', { class: 'kvs' }, `headers: ${show(headers)}`) : null,
    h('pre', { class: 'payload', data: { encoding: m.payload_encoding } }, m.payload),
    h('p', { class: 'muted' }, `${m.payload_bytes} bytes, ${m.payload_encoding === 'base64' ? 'shown in base64' : 'shown as text'}`));
}

/**
 * Bindings of a queue (kind 'q') or from an exchange (kind 'e'), with a
 * form to add one and a button to remove each.
 */
export function bindingsPanel({ vhost, kind, name, ctx }) {
  const list = listPanel('Bindings', [
    kind === 'q'
      ? { label: 'From exchange', value: (b) => exchangeLabel(b.source) }
      : { label: 'To', value: (b) => `${b.destination_type} ${b.destination}` },
    { label: 'Routing key', value: (b) => b.routing_key },
    { label: 'Arguments', value: (b) => toLines(b.arguments) },
    { label: '', value: (b) => unbind(b) },
  ], { empty: 'No bindings.', filter: false });

  function unbind(b) {
    if (b.source === '') return h('span', { class: 'muted' }, 'default binding');
    const destKind = b.destination_type === 'queue' ? 'q' : 'e';
    return actionButton('Unbind', {
      question: `Remove the binding from ${b.source} to ${b.destination}?`,
      action: async () => {
        await del(apiPath('bindings', vhost, 'e', b.source, destKind, b.destination, b.properties_key));
        await ctx.refreshNow();
      },
      report: list.report,
    });
  }

  const form = bindForm({ vhost, kind, name, ctx });
  list.el.querySelector('.panel-body').append(h('h3', {}, 'Add a binding'), form);

  async function refresh() {
    const path = kind === 'q'
      ? apiPath('queues', vhost, name, 'bindings')
      : apiPath('exchanges', vhost, name || 'amq.default', 'bindings', 'source');
    list.set(await get(path));
  }
  return { el: list.el, refresh };
}

function bindForm({ vhost, kind, name, ctx }) {
  const other = kind === 'q'
    ? [field('From exchange', h('input', { name: 'source', required: true }))]
    : [field('To', select('dest_kind', [['q', 'queue'], ['e', 'exchange']], 'q')),
      field('Destination name', h('input', { name: 'destination', required: true }))];
  const form = h('form', { class: 'form' }, other,
    field('Routing key', h('input', { name: 'routing_key' })),
    field('Arguments', h('textarea', { name: 'arguments', rows: 2, placeholder: 'key = value, one per line' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Bind')));
  return onSubmit(form, async (v) => {
    const path = kind === 'q'
      ? apiPath('bindings', vhost, 'e', v.source, 'q', name)
      : apiPath('bindings', vhost, 'e', name, v.dest_kind, v.destination);
    await post(path, { routing_key: v.routing_key, arguments: parseLines(v.arguments) });
    await ctx.refreshNow();
    return 'Bound.';
  });
}
