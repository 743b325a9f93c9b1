// The demo page's Producer control: switching to "Rust (wasm)" feeds every widget from the
// example Rust producer (examples/rust-producer: the stream-engine Rust API, its batches handed
// to JS as a ReadableStream through wasm-streams); switching back cancels those streams, which
// closes the Rust connections. Needs `bash scripts/build-rust-producer.sh` (scripts/test.sh runs it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const STREAMS = ['sequential', 'random', 'sine-wave', 'step'];
const built = existsSync(new URL('../../pkg/rust-producer/rust_producer_bg.wasm', import.meta.url));
const skip = skipReason() || (!built && 'the Rust producer is not built: run `bash scripts/build-rust-producer.sh`');

describe('demo page: the Rust producer control', () => {
  let env;
  let page;
  let problems;

  before(async () => {
    if (skip) return;
    env = await openBrowser();
    page = await (await env.browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
    problems = captureProblems(page);
    await page.goto(env.url);
    await page.waitForSelector('html[data-ready="true"]', { timeout: 10000 });
  });

  after(async () => {
    await env?.close();
  });

  const rust = (fn) => page.evaluate(async (name) => (await import('/pkg/rust-producer/rust_producer.js'))[name](), fn);
  const received = () =>
    page.evaluate((keys) => keys.map((k) => Number(document.querySelector(`#count-${k}`).dataset.count)), STREAMS);

  test('switching to Rust feeds all four widgets from Rust sources', { skip }, async () => {
    await page.selectOption('#producer', 'rust');
    await page.waitForSelector('html[data-producer="rust"]', { timeout: 10000 });
    // One Rust connection per stream, producing.
    await page.waitForFunction(async () => (await import('/pkg/rust-producer/rust_producer.js')).rustSources().length === 4, null, { timeout: 10000 });
    const produced0 = await rust('rustProduced');
    const before = await received();
    await page.waitForFunction(
      async ({ keys, before, produced0 }) => {
        const m = await import('/pkg/rust-producer/rust_producer.js');
        return m.rustProduced() > produced0 && keys.every((k, i) => Number(document.querySelector(`#count-${k}`).dataset.count) > before[i]);
      },
      { keys: STREAMS, before, produced0 },
      { timeout: 10000 },
    );
    // What the widgets show now was made in Rust (its messages carry data.producer = 'rust').
    await page.waitForFunction((keys) => keys.every((k) => globalThis.demo.streams.get(k).el.card.dataset.producer === 'rust'), STREAMS, { timeout: 10000 });
    assert.equal(await page.textContent('#producer-hint'), 'examples/rust-producer: Rust API → ReadableStream');
    assert.deepEqual(problems, []);
  });

  test('switching back to JS cancels the Rust streams and closes their connections', { skip }, async () => {
    await page.selectOption('#producer', 'js');
    await page.waitForSelector('html[data-producer="js"]', { timeout: 10000 });
    await page.waitForFunction(async () => (await import('/pkg/rust-producer/rust_producer.js')).rustSources().length === 0, null, { timeout: 10000 });
    await page.waitForFunction((keys) => keys.every((k) => globalThis.demo.streams.get(k).el.card.dataset.producer === 'js'), STREAMS, { timeout: 10000 });
    const before = await received();
    await page.waitForFunction(
      ({ keys, before }) => keys.every((k, i) => Number(document.querySelector(`#count-${k}`).dataset.count) > before[i]),
      { keys: STREAMS, before },
      { timeout: 10000 },
    );
    assert.deepEqual(problems, []);
  });

  test('bad input to the Rust producer is a TypeError or RangeError naming the field', { skip }, async () => {
    const errors = await page.evaluate(async () => {
      const m = await import('/pkg/rust-producer/rust_producer.js');
      const attempt = (...args) => {
        try {
          m.createRustSource(...args);
          return 'no error';
        } catch (e) {
          return `${e.constructor.name}: ${e.message}`;
        }
      };
      return [attempt('zigzag', { rate: 1 }), attempt('random', { rate: 0 }), attempt('random', {}), attempt('step', { rate: 1, period: 'x' })];
    });
    assert.deepEqual(errors, [
      "TypeError: pattern must be one of 'sequential', 'random', 'sine-wave', 'step', got 'zigzag'",
      'RangeError: rate must be > 0, got 0',
      'TypeError: rate is required',
      'TypeError: period must be a number',
    ]);
    assert.deepEqual(problems, []);
  });
});
