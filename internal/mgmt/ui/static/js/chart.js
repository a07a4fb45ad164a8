// Line charts on <canvas> of the overview's samples: no library, just the
// 2D context. A chart covers a fixed window ending at the newest sample.

const WINDOW_MS = 10 * 60 * 1000;
const PAD = { left: 56, right: 14, top: 12, bottom: 26 };
const GRID = '#e3e8e8';
const INK = '#5b6b6a';

/**
 * Points of a counter's rate from API samples (newest first, cumulative
 * counts): the change per second between neighbouring samples.
 */
export function ratePoints(samples) {
  const out = [];
  for (let i = 0; i + 1 < (samples?.length ?? 0); i++) {
    const a = samples[i];
    const b = samples[i + 1];
    const dt = (a.timestamp - b.timestamp) / 1000;
    if (dt > 0) out.push({ t: a.timestamp, v: Math.max(0, (a.sample - b.sample) / dt) });
  }
  return out.reverse();
}

/** Points of a gauge (such as queued messages) from API samples. */
export function levelPoints(samples) {
  return (samples ?? []).map((s) => ({ t: s.timestamp, v: s.sample })).reverse();
}

/**
 * Draws series [{label, color, dash, points: [{t, v}] oldest first}] on canvas,
 * sized to the canvas's box. options.format turns axis values into text;
 * options.integer keeps the axis steps whole, for counts.
 */
export function drawChart(canvas, series, { format = String, integer = false } = {}) {
  const g = prepare(canvas);
  const w = canvas.clientWidth;
  const ht = canvas.clientHeight;
  const all = series.flatMap((s) => s.points);
  const end = all.length ? Math.max(...all.map((p) => p.t)) : Date.now();
  const box = { x0: PAD.left, x1: w - PAD.right, y0: PAD.top, y1: ht - PAD.bottom, t0: end - WINDOW_MS, t1: end };
  const raw = niceStep(Math.max(1, ...all.map((p) => p.v)) / 4);
  const step = integer ? Math.max(1, raw) : raw;
  box.max = step * Math.max(1, Math.ceil(Math.max(0, ...all.map((p) => p.v)) / step));
  drawGrid(g, box, step, format);
  if (all.length < 2) {
    g.fillStyle = INK;
    g.textAlign = 'center';
    g.fillText('Collecting samples…', (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2);
    return;
  }
  // Dashed series go last, so that a line they cover still shows.
  for (const s of series.filter((x) => !x.dash)) drawLine(g, box, s);
  for (const s of series.filter((x) => x.dash)) drawLine(g, box, s);
}

/** Sizes the canvas's pixels to its box and the screen's density. */
function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * dpr);
  canvas.height = Math.round(canvas.clientHeight * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  g.font = '11px system-ui, sans-serif';
  return g;
}

/** A round step (1, 2 or 5 times a power of ten) at least raw. */
function niceStep(raw) {
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    if (m * pow >= raw) return m * pow;
  }
  return 10 * pow;
}

function xOf(box, t) {
  return box.x0 + ((t - box.t0) / (box.t1 - box.t0)) * (box.x1 - box.x0);
}

function yOf(box, v) {
  return box.y1 - (v / box.max) * (box.y1 - box.y0);
}

/** Horizontal lines with values, and a time label every two minutes. */
function drawGrid(g, box, step, format) {
  g.lineWidth = 1;
  g.strokeStyle = GRID;
  g.fillStyle = INK;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let v = 0; v <= box.max + step / 2; v += step) {
    const y = Math.round(yOf(box, v)) + 0.5;
    line(g, box.x0, y, box.x1, y);
    g.fillText(format(v), box.x0 - 6, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  for (let ago = 0; ago <= WINDOW_MS; ago += 2 * 60 * 1000) {
    const x = Math.round(xOf(box, box.t1 - ago)) + 0.5;
    line(g, x, box.y0, x, box.y1);
    g.fillText(ago === 0 ? 'now' : `-${ago / 60000} min`, Math.min(Math.max(x, box.x0 + 16), box.x1 - 16), box.y1 + 6);
  }
}

function line(g, x0, y0, x1, y1) {
  g.beginPath();
  g.moveTo(x0, y0);
  g.lineTo(x1, y1);
  g.stroke();
}

/** One series as a line over a faint fill down to zero. */
function drawLine(g, box, s) {
  const pts = s.points.filter((p) => p.t >= box.t0);
  if (pts.length === 0) return;
  g.beginPath();
  pts.forEach((p, i) => (i === 0 ? g.moveTo : g.lineTo).call(g, xOf(box, p.t), yOf(box, p.v)));
  g.lineWidth = 2;
  g.lineJoin = 'round';
  g.strokeStyle = s.color;
  g.setLineDash(s.dash ? [6, 4] : []);
  g.stroke();
  g.setLineDash([]);
  g.lineTo(xOf(box, pts[pts.length - 1].t), box.y1);
  g.lineTo(xOf(box, pts[0].t), box.y1);
  g.closePath();
  g.globalAlpha = 0.08;
  g.fillStyle = s.color;
  g.fill();
  g.globalAlpha = 1;
}
