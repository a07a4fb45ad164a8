// Turning the API's numbers and objects into short text, and the
// "key = value" lines of the forms back into objects.

const integer = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

/** A count with thousands separators; '—' when unknown. */
export function count(n) {
  return typeof n === 'number' ? integer.format(n) : '—';
}

/** A rate per second from a *_details object. */
export function rate(details) {
  const r = details?.rate;
  if (typeof r !== 'number') return '—';
  return `${r >= 10 || r === 0 ? integer.format(r) : decimal.format(r)}/s`;
}

/** A size in bytes, in binary units. */
export function bytes(n) {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : decimal.format(n)} ${units[i]}`;
}

/** A duration in milliseconds as days, hours and minutes. */
export function duration(ms) {
  if (typeof ms !== 'number') return '—';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hrs = Math.floor((s % 86400) / 3600);
  const min = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${hrs}h`;
  if (hrs > 0) return `${hrs}h ${min}m`;
  if (min > 0) return `${min}m ${s % 60}s`;
  return `${s}s`;
}

/** A time in milliseconds since the epoch, local date and time. */
export function when(ms) {
  if (typeof ms !== 'number') return '—';
  const d = new Date(ms);
  return `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB')}`;
}

/** The clock time of now, for "updated at". */
export function clock(d = new Date()) {
  return d.toLocaleTimeString('en-GB');
}

/** The short feature letters of a queue or exchange. */
export function features(o) {
  const out = [];
  if (o.durable) out.push(['D', 'durable']);
  if (o.auto_delete) out.push(['AD', 'auto-delete']);
  if (o.exclusive) out.push(['Excl', 'exclusive']);
  if (o.internal) out.push(['I', 'internal']);
  if (o.policy) out.push([o.policy, 'policy']);
  if (o.operator_policy) out.push([o.operator_policy, 'operator policy']);
  for (const k of Object.keys(o.arguments ?? {})) out.push([shortArg(k), `${k}: ${show(o.arguments[k])}`]);
  return out;
}

function shortArg(key) {
  const names = {
    'x-message-ttl': 'TTL', 'x-expires': 'Exp', 'x-max-length': 'Lim', 'x-max-length-bytes': 'Lim B',
    'x-dead-letter-exchange': 'DLX', 'x-dead-letter-routing-key': 'DLK', 'x-max-priority': 'Pri',
    'x-overflow': 'Ovfl', 'x-queue-type': 'Type', 'x-single-active-consumer': 'SAC',
    'alternate-exchange': 'AE',
  };
  return names[key] ?? 'Args';
}

/** Any JSON value as short text. */
export function show(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** An object as "key = value" lines, the form the text areas take. */
export function toLines(obj) {
  return Object.entries(obj ?? {}).map(([k, v]) => `${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n');
}

/**
 * Parses "key = value" lines into an object. Values that look like
 * numbers, true/false or JSON become those; "quoted" values and anything
 * else stay strings. Blank lines and lines starting with # are skipped.
 */
export function parseLines(text) {
  const out = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq < 1) throw new Error(`Line ${i + 1}: write key = value.`);
    out[line.slice(0, eq).trim()] = typed(line.slice(eq + 1).trim());
  });
  return out;
}

function typed(v) {
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^".*"$/.test(v)) return v.slice(1, -1);
  if (/^[[{]/.test(v)) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  return v;
}

/** The name the UI shows for a vhost, exchange or queue. */
export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}
