// The window/downsample stages' second .wasm (pkg/stages/) in Chromium: not fetched by init(),
// fetched once on first use of a stage (whose streams wait for it), option errors reach the
// stream, and the synchronous APIs ask for `await initStages()` until then. Once as native ES
// modules (/dist/web.mjs), once in a Vite 8 production build, where the stages are a lazy chunk.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const skip = skipReason();

// Runs in the page: `api` is the package's module namespace, already past `await init()`.
async function exercise(api) {
  const { WindowAggregator, createWindowStage, createDownsampleStage, downsampleLTTB, initStages } = api;
  const fetchedBefore = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm')).map((e) => e.name.split('/').pop());
  const syncErrors = [];
  for (const f of [() => new WindowAggregator({ size: 10 }), () => downsampleLTTB([], 2)]) {
    try {
      f();
      syncErrors.push('no error');
    } catch (e) {
      syncErrors.push(e.message);
    }
  }
  const msg = (id, timestamp, data) => ({ id, timestamp, sourceNodeId: 's', targetNodeId: 't', port: 'o', data });
  // The stage exists before its module: the writes wait for it.
  const stage = createWindowStage({ size: 10 });
  // Bad window options of a stage created before the module: the stream errors, naming the field.
  const bad = createWindowStage({ size: -1 });
  const aggregatorBefore = stage.aggregator;
  const out = [];
  const reading = stage.readable.pipeTo(new WritableStream({ write: (rs) => out.push(...rs.map((r) => `${r.id}=${r.data.sum}`)) }));
  const w = stage.writable.getWriter();
  await w.write([msg('a', 1, 2), msg('b', 5, 3)]);
  await w.write(msg('c', 12, 4));
  await w.close();
  await reading;
  let streamError = null;
  try {
    await bad.readable.getReader().read();
  } catch (e) {
    streamError = `${e.name}: ${e.message}`;
  }
  const down = createDownsampleStage({ bucketMs: 10 });
  const buckets = [];
  const downReading = down.readable.pipeTo(new WritableStream({ write: (bs) => buckets.push(...bs.map((b) => `${b.data.min}..${b.data.max}`)) }));
  const dw = down.writable.getWriter();
  await dw.write([msg('d1', 1, 5), msg('d2', 2, -1), msg('d3', 15, 7)]);
  await dw.close();
  await downReading;
  const p1 = initStages();
  const p2 = initStages();
  await p1;
  const agg = new WindowAggregator({ size: 10 });
  const now = agg.add([msg('x', 1, 1), msg('y', 11, 1)]).results.map((r) => r.id);
  let thrown = null;
  try {
    createWindowStage({ size: -1 }); // once loaded: thrown at once, as in Node
  } catch (e) {
    thrown = `${e.name}: ${e.message}`;
  }
  const lttb = downsampleLTTB([5, 1, 9, 2].map((data, timestamp) => ({ timestamp, data })), 3).map((x) => x.data);
  const fetched = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm')).map((e) => e.name.split('/').pop());
  return { thrown, fetchedBefore, syncErrors, aggregatorBefore, out, streamError, buckets, samePromise: p1 === p2, now, lttb, fetched, aggregatorAfter: stage.aggregator !== null };
}

function check(r, { main, stages }) {
  assert.equal(r.fetchedBefore.length, 1, `init() fetches only the engine's .wasm: ${r.fetchedBefore}`);
  assert.match(r.fetchedBefore[0], main);
  for (const m of r.syncErrors) assert.match(m, /await initStages\(\)/);
  assert.equal(r.aggregatorBefore, null);
  assert.deepEqual(r.out, ['win:s:0:10=5', 'win:s:10:20=4']);
  assert.match(r.streamError, /^RangeError: size/);
  assert.match(r.thrown, /^RangeError: size/);
  assert.deepEqual(r.buckets, ['-1..5', '7..7']);
  assert.equal(r.samePromise, true);
  assert.deepEqual(r.now, ['win:s:0:10']);
  assert.deepEqual(r.lttb, [5, 9, 2]);
  assert.equal(r.fetched.length, 2, `the stages' .wasm once: ${r.fetched}`);
  assert.match(r.fetched[1], stages);
  assert.equal(r.aggregatorAfter, true);
}

describe('stages module in Chromium (native ES modules)', () => {
  let env;
  let page;
  let problems;

  before(async () => {
    if (skip) return;
    env = await openBrowser();
    page = await env.browser.newPage();
    problems = captureProblems(page);
    const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body><script type="module">
      import init, * as api from '/dist/web.mjs';
      await init();
      window.api = api;
    </script></body></html>`;
    await page.route('**/www/__stages-test.html', (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }));
    await page.goto(`${env.url}www/__stages-test.html`);
    await page.waitForFunction(() => window.api !== undefined, null, { timeout: 10000 });
  });

  after(async () => {
    await env?.close();
  });

  test('the stages .wasm loads on first use; streams wait for it; sync APIs ask for initStages()', { skip }, async () => {
    const r = await page.evaluate(`(${exercise.toString()})(window.api)`);
    check(r, { main: /^stream_engine_bg\.wasm$/, stages: /^stream_engine_stages_bg\.wasm$/ });
    assert.deepEqual(problems, []);
  });
});

describe('stages module in a Vite 8 production build', () => {
  let env;
  let page;
  let problems;
  const dir = join(root, 'build', `stages-vite-${process.pid}`);

  before(async () => {
    if (skip) return;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'node_modules/@nodeflow'), { recursive: true });
    symlinkSync(root, join(dir, 'node_modules/@nodeflow/stream-engine'), 'dir');
    writeFileSync(join(dir, 'index.html'), '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="./main.js"></script></head><body></body></html>\n');
    writeFileSync(join(dir, 'main.js'), `import init, * as api from '@nodeflow/stream-engine';\nawait init();\nwindow.api = api;\n`);
    const { build } = await import('vite');
    // Served by the repository's static server with `dir` as its root: dist/ is a public folder.
    await build({ root: dir, base: './', configFile: false, logLevel: 'silent', build: { outDir: join(dir, 'dist'), emptyOutDir: true, target: 'es2022' } });
    env = await openBrowser({ root: dir });
    page = await env.browser.newPage();
    problems = captureProblems(page);
    await page.goto(`${env.url}dist/index.html`);
    await page.waitForFunction(() => window.api !== undefined, null, { timeout: 10000 });
  });

  after(async () => {
    await env?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the stages glue is a lazy chunk, its .wasm an asset fetched on first use', { skip }, async () => {
    const assets = readdirSync(join(dir, 'dist/assets'));
    assert.equal(assets.filter((f) => f.endsWith('.js')).length, 2, `entry and the stages chunk: ${assets}`);
    const r = await page.evaluate(`(${exercise.toString()})(window.api)`);
    check(r, { main: /^stream_engine_bg-.+\.wasm$/, stages: /^stream_engine_stages_bg-.+\.wasm$/ });
    assert.deepEqual(problems, []);
  });
});

describe('stages module through the Vite 8 dev server (the package pre-bundled)', () => {
  let env;
  let server;
  const dir = join(root, 'build', `stages-vite-dev-${process.pid}`);

  before(async () => {
    if (skip) return;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'node_modules/@nodeflow'), { recursive: true });
    symlinkSync(root, join(dir, 'node_modules/@nodeflow/stream-engine'), 'dir');
    writeFileSync(join(dir, 'index.html'), '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="./main.js"></script></head><body></body></html>\n');
    writeFileSync(join(dir, 'main.js'), `import init, * as api from '@nodeflow/stream-engine';\nawait init();\nwindow.api = api;\n`);
    const { createServer } = await import('vite');
    // As in vite.test.mjs: the linked package is pre-bundled like an installed one.
    server = await createServer({ root: dir, configFile: false, logLevel: 'silent', cacheDir: join(dir, '.vite'), optimizeDeps: { include: ['@nodeflow/stream-engine'], force: true }, server: { host: '127.0.0.1', port: 0, fs: { allow: [dir, root] } } });
    await server.listen();
    env = await openBrowser();
  });

  after(async () => {
    await env?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the pre-bundled stages glue finds its .wasm on first use', { skip }, async () => {
    const page = await env.browser.newPage();
    const problems = captureProblems(page);
    await page.goto(server.resolvedUrls.local[0]);
    await page.waitForFunction(() => window.api !== undefined, null, { timeout: 30000 });
    const r = await page.evaluate(`(${exercise.toString()})(window.api)`);
    check(r, { main: /^stream_engine_bg\.wasm$/, stages: /^stream_engine_stages_bg\.wasm$/ });
    assert.deepEqual(problems, []);
  });
});
