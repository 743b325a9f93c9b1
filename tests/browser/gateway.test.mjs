// The gateway client in Chromium against a real gateway on loopback: a frozen page (driven through
// the DevTools protocol) gets the current state on return, not the backlog; the demo page takes its
// data from the demo gateway, reconnects, resumes, and signals a gap beyond the history.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGateway } from '@nodeflow/stream-engine/gateway';
import { startDemoGateway } from '../../scripts/demo-gateway.mjs';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const skip = skipReason();

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gateway client</title><link rel="icon" href="data:,"></head>
<body>
<script type="module">
  import init, { StreamEngine, connectGateway } from '/dist/web.mjs';
  await init();
  const engine = new StreamEngine();
  const url = new URL('/gw', location.href);
  url.protocol = 'ws:';
  const client = connectGateway(url.href, {
    topics: [{ topic: 'k', hidden: 'pause', policy: { conflate: true, bufferSize: 100 } }],
    engine,
    connection: { batchTimeout: 0 },
  });
  window.batches = [];
  window.events = [];
  (async () => {
    const r = client.readable('k').getReader();
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      window.batches.push(value.map((m) => m.id));
    }
  })();
  (async () => {
    const r = engine.events({ types: ['gateway'] }).getReader();
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      window.events.push(value.action + (value.hidden !== undefined ? ':' + value.hidden : ''));
    }
  })();
  await client.ready();
  window.client = client;
  window.loaded = true;
</script>
</body></html>`;

const msg = (id, key, i) => ({ id, timestamp: Date.now(), sourceNodeId: 'feed', targetNodeId: '*', port: 'out', data: i, metadata: { key } });

/**
 * Hides or shows the page through the DevTools protocol. Headless Chromium keeps every page
 * 'visible' (minimising its window or opening another tab changes nothing) and ignores
 * Page.setWebLifecycleState 'frozen' for a visible page, so the visibility is emulated in the page
 * over the same CDP session: document.visibilityState is overridden and the lifecycle events a
 * real browser fires are dispatched ('visibilitychange', then 'freeze' when hiding; 'resume' and
 * 'visibilitychange' when showing).
 */
async function hide(cdp, hidden) {
  const state = hidden ? 'hidden' : 'visible';
  const events = hidden ? ['visibilitychange', 'freeze'] : ['resume', 'visibilitychange'];
  await cdp.send('Runtime.evaluate', {
    expression: `Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => '${state}' });
      for (const type of ${JSON.stringify(events)}) document.dispatchEvent(new Event(type));`,
  });
  await cdp.send('Page.setWebLifecycleState', { state: hidden ? 'frozen' : 'active' });
}

async function until(cond, what, ms = 15000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('gateway client in Chromium', () => {
  let env;

  before(async () => {
    if (skip) return;
    env = await openBrowser();
  });

  after(async () => {
    await env?.close();
  });

  test('a hidden page pauses its topic at the gateway (bounded), and gets the latest value per key at once when visible again', { skip }, async () => {
    const gw = await createGateway({ server: env.server.server, path: '/gw', topics: ['k'] });
    const page = await env.browser.newPage();
    const problems = captureProblems(page);
    try {
      // A document really loaded from the loopback server (a route-fulfilled one counts as public
      // for Chromium's local network access checks, which then block ws://127.0.0.1), then our page.
      await page.goto(`${env.url}www/style.css`);
      await page.setContent(PAGE);
      await page.waitForFunction(() => window.loaded === true, null, { timeout: 15000 }).catch(async (e) => {
        throw new Error(`${e.message} ${JSON.stringify(problems)} ${await page.evaluate(() => JSON.stringify(window.events))}`);
      });
      gw.publish('k', [msg('live-1', 'a', 1), msg('live-2', 'b', 2)]);
      await until(async () => (await page.evaluate(() => window.batches.flat().length)) === 2, 'live messages');

      const cdp = await page.context().newCDPSession(page);
      await hide(cdp, true);
      const client = [...gw.clients][0];
      const sub = client.subs.get('k');
      await until(() => sub.mode === 'pause', 'pause requested when the page was hidden');
      let maxHeld = 0;
      const ids = [];
      for (let i = 0; i < 1000; i++) {
        const id = `u${i}`;
        ids.push(id);
        gw.publish('k', msg(id, `key${i % 10}`, i));
        if (i % 100 === 99) {
          maxHeld = Math.max(maxHeld, sub.buffered());
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      assert.ok(maxHeld <= 10, `held ${maxHeld} <= 10 keys while hidden`);
      await hide(cdp, false);
      await until(async () => (await page.evaluate(() => window.batches.flat().length)) >= 12, 'the current state');
      await new Promise((r) => setTimeout(r, 100)); // room for a backlog to show, if there were one
      const batches = await page.evaluate(() => window.batches);
      const after = batches.slice(1).flat();
      assert.deepEqual(after.sort(), ids.slice(-10).sort(), 'exactly the latest value of each key');
      const events = await page.evaluate(() => window.events);
      assert.ok(events.includes('visibility:true') && events.includes('visibility:false'), events.join(','));
      assert.deepEqual(problems.filter((p) => !p.includes('/favicon.ico')), []); // the stylesheet loaded as a document asks for one
    } finally {
      await page.close();
      await gw.close();
    }
  });

  test('the demo page takes its data from the local gateway, reconnects and resumes, and shows a gap after a long outage', { skip }, async () => {
    const demo = await startDemoGateway({ server: env.server.server, rate: 50, historySize: 200, heartbeatInterval: 500 });
    const page = await env.browser.newPage();
    const problems = captureProblems(page);
    try {
      await page.goto(env.url);
      await page.waitForFunction(() => document.documentElement.dataset.ready === 'true', null, { timeout: 20000 });
      await page.check('#gateway-mode', { force: true });
      const stats = () => page.evaluate(() => globalThis.demoGateway.stats());
      await until(async () => (await stats())?.received > 20, 'data from the gateway');
      // The page's own connections are fed by the gateway now.
      const id = await page.evaluate(() => globalThis.demo.streams.get('sequential').id);
      const before = await page.evaluate((i) => globalThis.demo.engine.getMetrics(i).messagesIn, id);
      await until(async () => (await page.evaluate((i) => globalThis.demo.engine.getMetrics(i).messagesIn, id)) > before + 10, 'widgets fed');
      // A short drop: resumed from the history, no gap.
      await page.evaluate(() => globalThis.demoGateway.cut(300));
      await until(async () => (await stats()).reconnects >= 1 && (await stats()).state === 'open', 'reconnect');
      const r1 = (await stats()).received;
      await until(async () => (await stats()).received > r1 + 20, 'data after the reconnect');
      assert.equal((await stats()).gaps, 0);
      // An outage longer than the history (200 messages at 50 msg/s = 4 s): a gap, on the event feed and in the stats.
      await page.evaluate(() => globalThis.demoGateway.cut(5000));
      await until(async () => (await stats()).gaps >= 1, 'gap', 20000);
      const text = await page.textContent('#gateway-stats');
      assert.match(text, /reconnects/);
      assert.deepEqual(problems.filter((p) => !/WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(p)), []);
    } finally {
      await page.close();
      await demo.close();
    }
  });
});
