// The demo page (www/) in headless Chromium: it loads cleanly, its widgets and metrics go live,
// the slow widget causes backpressure and alerts that resolve, pause/resume and the debug export
// work. A screenshot of the running page goes to test-output/demo.png.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const STREAMS = ['sequential', 'random', 'sine-wave', 'step'];
const OUT = new URL('../../test-output/', import.meta.url);

// Without Chromium every test is reported as skipped, with the reason.
const skip = skipReason();

describe('demo page in Chromium', () => {
  let env;
  let page;
  let problems;

  before(async () => {
    if (skip) return;
    env = await openBrowser();
    const context = await env.browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
    page = await context.newPage();
    problems = captureProblems(page);
  });

  after(async () => {
    await env?.close();
  });

  /** Sets the rate slider the way a user does (input while dragging, change on release). */
  const setRate = (rate) =>
    page.$eval(
      '#rate',
      (el, r) => {
        el.value = String(Math.log10(r));
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
      },
      rate,
    );

  const snapshot = () =>
    page.evaluate((keys) => {
      const out = {};
      for (const k of keys) {
        out[k] = {
          frames: Number(document.querySelector(`#chart-${k}`).dataset.frames),
          received: Number(document.querySelector(`#count-${k}`).dataset.count),
          delivered: Number(document.querySelector(`#metric-${k}-delivered`).dataset.value ?? NaN),
          rateText: document.querySelector(`#metric-${k}-rate`).textContent,
        };
      }
      return out;
    }, STREAMS);

  test('loads without console errors or warnings; four charts and the metrics go live within 2 s', { skip }, async () => {
    const response = await page.goto(env.url);
    assert.equal(response.status(), 200);
    await page.waitForSelector('html[data-ready="true"]', { timeout: 10000 });
    assert.equal(await page.textContent('#status'), 'Running');
    const before = await snapshot();
    // Every chart redraws with new messages, and the metrics panel shows live figures.
    await page.waitForFunction(
      ({ keys, before }) =>
        keys.every((k) => {
          const frames = Number(document.querySelector(`#chart-${k}`).dataset.frames);
          const received = Number(document.querySelector(`#count-${k}`).dataset.count);
          const delivered = Number(document.querySelector(`#metric-${k}-delivered`).dataset.value);
          const rate = Number(document.querySelector(`#metric-${k}-rate`).dataset.value);
          return frames > before[k].frames && received > before[k].received && delivered > 0 && rate > 0 && Number.isFinite(Number(document.querySelector(`#chart-${k}`).dataset.last));
        }),
      { keys: STREAMS, before },
      { timeout: 2000 },
    );
    const a = await snapshot();
    await page.waitForTimeout(700);
    const b = await snapshot();
    for (const k of STREAMS) {
      assert.ok(b[k].received > a[k].received, `${k}: messages keep arriving`);
      assert.ok(b[k].frames > a[k].frames, `${k}: the chart keeps drawing`);
    }
    // Latency figures carry numbers, the buffer bar a value.
    const p95 = await page.textContent('#metric-sequential-p95');
    assert.match(p95, /^\d+(\.\d)?$/);
    const buffer = await page.getAttribute('#metric-sequential-buffer', 'data-value');
    assert.ok(Number(buffer) >= 0 && Number(buffer) <= 1, `buffer utilisation ${buffer}`);
    assert.deepEqual(problems, []);
  });

  test('a higher rate with the slow widget gives backpressure and an alert, which resolves when it is off', { skip }, async () => {
    await setRate(10000);
    assert.equal(await page.textContent('#rate-value'), '10,000 msg/s');
    await page.check('#slow-widget', { force: true });
    await page.waitForSelector('#backpressure-sequential[data-state="on"]', { timeout: 15000 });
    const alert = await page.waitForSelector('#alerts li[data-state="active"][data-type="backpressure"][data-connection^="seq-source"]', { timeout: 15000 });
    assert.match(await alert.textContent(), /buffer utilisation/);
    assert.match(await page.textContent('#alert-count'), /^[1-9]\d* active$/);
    assert.ok(await page.isVisible('#event-log li[data-type="backpressure"]'), 'the event log shows backpressure');

    await page.uncheck('#slow-widget', { force: true });
    await page.waitForSelector('#alerts li[data-state="resolved"][data-type="backpressure"][data-connection^="seq-source"]', { timeout: 15000 });
    await page.waitForSelector('#backpressure-sequential[data-state="off"]', { timeout: 15000 });
    await setRate(1000);
    assert.deepEqual(problems, []);
  });

  test('pause stops a connection and resume restarts it', { skip }, async () => {
    const button = page.locator('[data-pause="random"]');
    await button.click();
    assert.equal(await button.getAttribute('aria-pressed'), 'true');
    assert.equal(await button.textContent(), 'Resume');
    await page.waitForSelector('#backpressure-random[data-state="paused"]');
    await page.waitForTimeout(600); // a batch already on its way may still land
    const count = async () => Number(await page.getAttribute('#count-random', 'data-count'));
    const a = await count();
    await page.waitForTimeout(1500);
    const b = await count();
    assert.equal(b, a, 'no messages are delivered while paused');
    // The others keep going.
    const seq = Number(await page.getAttribute('#count-sequential', 'data-count'));
    await page.waitForFunction((n) => Number(document.querySelector('#count-sequential').dataset.count) > n, seq, { timeout: 3000 });

    await button.click();
    assert.equal(await button.getAttribute('aria-pressed'), 'false');
    await page.waitForFunction((n) => Number(document.querySelector('#count-random').dataset.count) > n, b, { timeout: 3000 });
    assert.deepEqual(problems, []);
  });

  test('changing the backpressure handler re-creates the connections', { skip }, async () => {
    const ids = () => page.$$eval('#metrics-body .id', (els) => els.map((e) => e.textContent));
    const before = await ids();
    await page.selectOption('#handler', 'none');
    await page.waitForFunction(() => document.querySelectorAll('#event-log li[data-type="connection"]').length >= 12, null, { timeout: 10000 });
    assert.deepEqual(await ids(), before, 'same ids, new connections');
    const snap = await snapshot();
    await page.waitForFunction(
      ({ keys, snap }) => keys.every((k) => Number(document.querySelector(`#count-${k}`).dataset.count) > snap[k].received),
      { keys: STREAMS, snap },
      { timeout: 3000 },
    );
    await page.selectOption('#handler', 'default');
    assert.deepEqual(problems, []);
  });

  test('export downloads the debugger data as JSON', { skip }, async () => {
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), page.click('#export')]);
    assert.match(download.suggestedFilename(), /^stream-engine-debug-.*\.json$/);
    const file = await download.path();
    const data = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(data.metadata.recording, true);
    assert.ok(Array.isArray(data.events) && data.events.length > 0, 'events were recorded');
    assert.equal(data.metadata.eventCount, data.events.length);
    assert.ok(data.events.some((e) => e.type === 'connection_created'));
    assert.ok(data.events.some((e) => e.type === 'batch_delivered'));
    assert.ok(Array.isArray(data.snapshots) && data.snapshots.length > 0, 'metrics snapshots were recorded');
    assert.ok(data.alerts.some((a) => a.type === 'backpressure'), 'the slow-widget alert is in the export');
    assert.ok(data.metadata.thresholds.backpressure.warning > 0);
    assert.deepEqual(problems, []);
  });

  test('screenshot of the running page goes to test-output/demo.png', { skip }, async () => {
    mkdirSync(OUT, { recursive: true });
    await page.waitForTimeout(500);
    const png = await page.screenshot({ path: new URL('demo.png', OUT).pathname, fullPage: true });
    assert.ok(png.length > 10000);
    assert.deepEqual(problems, [], 'no console errors or warnings during the whole session');
  });
});
