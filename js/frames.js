// Frame-aligned delivery: at most one batch per animation frame, with a defined fallback where
// there are no animation frames (hidden tabs, Node, workers without requestAnimationFrame).
import { validateOption } from '#wasm';
import { describe } from './priority.js';

/** Delivery interval where requestAnimationFrame does not exist at all (Node): one 60 Hz frame. */
export const FRAME_MS = 1000 / 60;

/**
 * Checks `frames()` options: `{ hiddenInterval = 1000 }` (ms, a positive integer) and, for
 * tests and custom schedulers, `nextFrame` (a function returning a promise).
 */
export function frameOptions(options) {
  const o = options ?? {};
  if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`frames options must be an object, got ${describe(o)}`);
  for (const k of Object.keys(o)) {
    if (k !== 'hiddenInterval' && k !== 'nextFrame') throw new TypeError(`frames options has an unknown option ${JSON.stringify(k)}`);
  }
  const hiddenInterval = o.hiddenInterval === undefined ? 1000 : validateOption('positiveInt', 'hiddenInterval', o.hiddenInterval);
  if (o.nextFrame !== undefined && typeof o.nextFrame !== 'function') throw new TypeError(`nextFrame must be a function, got ${describe(o.nextFrame)}`);
  return { hiddenInterval, nextFrame: o.nextFrame ?? frameClock(hiddenInterval) };
}

/**
 * A function returning a promise for the next delivery moment:
 * - visible page: the next animation frame (and, should frames stop, at most `hiddenInterval` ms);
 * - hidden page (no animation frames, throttled timers): a timer of `hiddenInterval` ms, cut short
 *   when the page becomes visible again;
 * - no requestAnimationFrame at all (Node): a 60 Hz timer.
 */
export function frameClock(hiddenInterval = 1000) {
  const g = globalThis;
  return function nextFrame() {
    return new Promise((resolve) => {
      const raf = typeof g.requestAnimationFrame === 'function' ? g.requestAnimationFrame : null;
      const doc = g.document;
      const hidden = doc !== undefined && doc.visibilityState === 'hidden';
      let frame = null;
      let timer = null;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        if (frame !== null) g.cancelAnimationFrame(frame);
        if (timer !== null) clearTimeout(timer);
        if (doc !== undefined) doc.removeEventListener('visibilitychange', onVisible);
        resolve();
      };
      const onVisible = () => {
        if (doc.visibilityState === 'visible') finish();
      };
      if (raf !== null && !hidden) {
        frame = raf(finish);
        timer = setTimeout(finish, hiddenInterval);
      } else if (raf !== null || doc !== undefined) {
        timer = setTimeout(finish, hiddenInterval);
        if (doc !== undefined) doc.addEventListener('visibilitychange', onVisible);
      } else {
        timer = setTimeout(finish, FRAME_MS);
      }
    });
  };
}
