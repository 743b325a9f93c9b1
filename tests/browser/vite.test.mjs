// The package with Vite 8 in Chromium: the dev server with the package pre-bundled (the README
// says Vite 8 needs no optimizeDeps note: the glue's .wasm URL survives pre-bundling).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const skip = skipReason();

describe('Vite 8 dev server (dependency pre-bundling) in Chromium', () => {
  let env;
  let server;
  let dir;

  before(async () => {
    if (skip) return;
    dir = join(tmpdir(), `nodeflow-vite-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'node_modules/@nodeflow'), { recursive: true });
    symlinkSync(root, join(dir, 'node_modules/@nodeflow/stream-engine'), 'dir');
    writeFileSync(join(dir, 'index.html'), '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="./main.js"></script></head><body></body></html>\n');
    writeFileSync(
      join(dir, 'main.js'),
      `import init, { StreamEngine } from '@nodeflow/stream-engine';
await init();
const e = new StreamEngine({ batchTimeout: 0 });
const id = e.createConnection('a', 'b', 'o', 'i');
const c = e.getConnection(id);
await c.writer.write({ id: '1', timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'o', data: 1 });
const { value } = await c.readable.getReader().read();
document.body.dataset.result = value.length + ' ' + e.getMetrics(id).messagesOut;
`,
    );
    const { createServer } = await import('vite');
    // The package is linked (not under a real node_modules), so Vite would treat it as source:
    // include it explicitly to get the pre-bundling an installed package gets, and allow serving
    // its real path (an installed package lives inside the project).
    server = await createServer({ root: dir, configFile: false, logLevel: 'silent', cacheDir: join(dir, '.vite'), optimizeDeps: { include: ['@nodeflow/stream-engine'], force: true }, server: { host: '127.0.0.1', port: 0, fs: { allow: [dir, root] } } });
    await server.listen();
    env = await openBrowser();
  });

  after(async () => {
    await env?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the pre-bundled package loads its .wasm without optimizeDeps.exclude', { skip }, async () => {
    const page = await env.browser.newPage();
    const problems = captureProblems(page);
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(server.resolvedUrls.local[0]);
    await page.waitForFunction(() => document.body.dataset.result !== undefined, null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => document.body.dataset.result), '1 1');
    assert.ok(urls.some((u) => u.includes('/.vite/deps/@nodeflow_stream-engine')), 'the package was served pre-bundled');
    assert.ok(urls.some((u) => u.endsWith('stream_engine_bg.wasm')), 'the .wasm was fetched');
    assert.deepEqual(problems, []);
  });
});
