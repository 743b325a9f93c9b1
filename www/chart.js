// Canvas widgets for the demo and the browser benchmark. Nothing here runs per message: a widget
// gets one point per animation frame (min, max and last value of the messages that arrived since
// the previous frame) and draws once.

/** Index of `prev` in `data` searching from the end, or -1. Messages after it are new. */
function lastIndexOfRef(data, prev) {
  if (prev === null) return -1;
  for (let i = data.length - 1; i >= 0; i--) if (data[i] === prev) return i;
  return -1;
}

/**
 * Reduces a widget update to what arrived since the previous one: `{ count, min, max, last }`, or
 * null if nothing is new. `state.prev` remembers the last message seen (by identity, so a source
 * restarting its sequence numbers is no problem).
 */
export function newSince(state, data, valueOf = (m) => m.data?.value) {
  const n = data.length;
  if (n === 0) return null;
  const lastMsg = data[n - 1];
  if (lastMsg === state.prev) return null;
  const from = lastIndexOfRef(data, state.prev) + 1;
  state.prev = lastMsg;
  let min = Infinity;
  let max = -Infinity;
  let last = NaN;
  for (let i = from; i < n; i++) {
    const v = Number(valueOf(data[i]));
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    last = v;
  }
  if (Number.isNaN(last)) return null;
  return { count: n - from, min, max, last };
}

/** Round numbers for axis labels. */
function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

const formatters = [0, 1, 2, 3].map((d) => new Intl.NumberFormat('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));

/** Compact, grouped numbers: 12,345 · 123k · 1.23M. `digits` decimals below 100,000. */
export function formatNumber(v, digits = 0) {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 1 : 2) + 'M';
  if (a >= 1e5) return (v / 1e3).toFixed(0) + 'k';
  return formatters[Math.min(3, Math.max(0, digits | 0))].format(v);
}

/**
 * A time-window line chart: one (min, max, last) point per frame, drawn as a min-max band with
 * the last value as a line. The y range follows the visible data smoothly.
 */
export class TimeChart {
  constructor(canvas, { windowMs = 10000, color = '#4f9dff', capacity = 2048, yUnit = '', fixedRange = null, gapMs = 400 } = {}) {
    this.gapMs = gapMs;
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: true });
    this.windowMs = windowMs;
    this.color = color;
    this.yUnit = yUnit;
    this.fixedRange = fixedRange;
    this.cap = capacity;
    this.t = new Float64Array(capacity);
    this.lo = new Float64Array(capacity);
    this.hi = new Float64Array(capacity);
    this.v = new Float64Array(capacity);
    this.head = 0; // next write position
    this.size = 0;
    this.yMin = NaN;
    this.yMax = NaN;
    this.frames = 0;
    this.width = 0;
    this.height = 0;
    this.dpr = 1;
    this._resize();
    if (typeof ResizeObserver === 'function') {
      this._ro = new ResizeObserver(() => {
        this._resize();
        this.draw();
      });
      this._ro.observe(canvas);
    }
  }

  _resize() {
    const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
    const w = Math.max(1, Math.round(this.canvas.clientWidth));
    const h = Math.max(1, Math.round(this.canvas.clientHeight));
    if (w === this.width && h === this.height && dpr === this.dpr) return;
    this.width = w;
    this.height = h;
    this.dpr = dpr;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
  }

  push(t, min, max, last) {
    const i = this.head;
    this.t[i] = t;
    this.lo[i] = min;
    this.hi[i] = max;
    this.v[i] = last;
    this.head = (i + 1) % this.cap;
    if (this.size < this.cap) this.size++;
  }

  clear() {
    this.size = 0;
    this.head = 0;
    this.yMin = NaN;
    this.yMax = NaN;
  }

  /** Draws the last `windowMs` ending at `now`. */
  draw(now = performance.now()) {
    const { ctx, width: W, height: H, dpr } = this;
    this.frames++;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const padL = 46;
    const padR = 8;
    const padT = 8;
    const padB = 18;
    const pw = W - padL - padR;
    const ph = H - padT - padB;
    if (pw <= 0 || ph <= 0) return;
    const t0 = now - this.windowMs;

    // Visible points, oldest first.
    const n = this.size;
    const start = (this.head - n + this.cap) % this.cap;
    let first = -1;
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % this.cap;
      if (this.t[i] < t0) continue;
      if (first < 0) first = k;
      if (this.lo[i] < lo) lo = this.lo[i];
      if (this.hi[i] > hi) hi = this.hi[i];
    }
    if (this.fixedRange) {
      lo = Math.min(lo, this.fixedRange[0]);
      hi = Math.max(hi, this.fixedRange[1]);
    }
    if (!Number.isFinite(lo)) {
      lo = 0;
      hi = 1;
    }
    if (hi - lo < 1e-9) {
      hi += 0.5;
      lo -= 0.5;
    }
    // Ease the axis towards the data so it does not jump every frame.
    if (Number.isNaN(this.yMin) || lo < this.yMin || hi > this.yMax) {
      const pad = (hi - lo) * 0.08;
      this.yMin = Number.isNaN(this.yMin) ? lo - pad : Math.min(lo - pad, this.yMin);
      this.yMax = Number.isNaN(this.yMax) ? hi + pad : Math.max(hi + pad, this.yMax);
    } else {
      const pad = (hi - lo) * 0.08;
      this.yMin += (lo - pad - this.yMin) * 0.05;
      this.yMax += (hi + pad - this.yMax) * 0.05;
    }
    const yMin = this.yMin;
    const yMax = this.yMax;
    const sx = pw / this.windowMs;
    const sy = ph / (yMax - yMin);
    const X = (t) => padL + (t - t0) * sx;
    const Y = (v) => padT + ph - (v - yMin) * sy;

    // Grid and labels.
    ctx.font = '11px system-ui, -apple-system, "Segoe UI", sans-serif';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    ctx.lineWidth = 1;
    ctx.strokeStyle = 'rgba(148, 163, 184, 0.14)';
    ctx.fillStyle = 'rgba(148, 163, 184, 0.85)';
    const step = niceStep(yMax - yMin, 4);
    ctx.beginPath();
    for (let g = Math.ceil(yMin / step) * step; g <= yMax; g += step) {
      const y = Math.round(Y(g)) + 0.5;
      ctx.moveTo(padL, y);
      ctx.lineTo(padL + pw, y);
      ctx.fillText(formatNumber(Math.abs(g) < step * 1e-6 ? 0 : g, step < 1 ? Math.min(2, Math.ceil(-Math.log10(step))) : 0), padL - 6, y);
    }
    for (let s = 0; s <= this.windowMs; s += 2000) {
      const x = Math.round(padL + pw - s * sx) + 0.5;
      ctx.moveTo(x, padT);
      ctx.lineTo(x, padT + ph);
    }
    ctx.stroke();
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    for (let s = 0; s <= this.windowMs; s += 2000) {
      const x = padL + pw - s * sx;
      ctx.fillText(s === 0 ? 'now' : `−${s / 1000} s`, Math.min(Math.max(x, padL + 12), padL + pw - 12), H - 4);
    }

    if (first < 0) return;
    ctx.save();
    ctx.beginPath();
    ctx.rect(padL, padT, pw, ph);
    ctx.clip();
    // Runs of points without a gap (a pause, a stalled consumer) are drawn separately.
    const gap = this.gapMs;
    let segStart = first;
    for (let k = first + 1; k <= n; k++) {
      const prev = (start + k - 1) % this.cap;
      if (k < n && this.t[(start + k) % this.cap] - this.t[prev] <= gap) continue;
      this._segment(start, segStart, k - 1, X, Y);
      segStart = k;
    }
    ctx.restore();
  }

  /** Draws points `a..b` (ring offsets from `start`): the min-max band, then the last-value line. */
  _segment(start, a, b, X, Y) {
    const { ctx, cap } = this;
    ctx.beginPath();
    for (let k = a; k <= b; k++) {
      const i = (start + k) % cap;
      if (k === a) ctx.moveTo(X(this.t[i]), Y(this.hi[i]));
      else ctx.lineTo(X(this.t[i]), Y(this.hi[i]));
    }
    for (let k = b; k >= a; k--) {
      const i = (start + k) % cap;
      ctx.lineTo(X(this.t[i]), Y(this.lo[i]));
    }
    ctx.closePath();
    ctx.globalAlpha = 0.22;
    ctx.fillStyle = this.color;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.beginPath();
    for (let k = a; k <= b; k++) {
      const i = (start + k) % cap;
      if (k === a) ctx.moveTo(X(this.t[i]), Y(this.v[i]));
      else ctx.lineTo(X(this.t[i]), Y(this.v[i]));
    }
    if (a === b) {
      const i = (start + a) % cap;
      ctx.lineTo(X(this.t[i]) + 1.5, Y(this.v[i]));
    }
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.6;
    ctx.lineJoin = 'round';
    ctx.stroke();
  }

  destroy() {
    this._ro?.disconnect();
  }
}
