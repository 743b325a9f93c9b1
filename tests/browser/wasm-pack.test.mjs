// The demo page served with its WebAssembly core from `wasm-pack build --target web` output
// (scripts/serve.mjs `wasmCore`, WASM_CORE_DIR on the command line): it loads and goes live. A
// server pointed at an empty directory breaks the page, so the core really comes from there.
// Skipped when wasm-pack is not installed (`bash scripts/setup.sh --wasm-pack`).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = join(root, 'test-output', 'wasm-pack-demo');
const empty = join(root, 'test-output', 'wasm-pack-empty');
const haveWasmPack = spawnSync('wasm-pack', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = skipReason() || (!haveWasmPack && 'wasm-pack is not installed: run `bash scripts/setup.sh --wasm-pack`');

describe('demo page on the wasm-pack output', () => {
  const envs = [];
  after(async () => {
    for (const e of envs) await e.close();
  });

  test('the page runs with /pkg/web/* served from the wasm-pack package', { skip }, async () => {
    rmSync(out, { recursive: true, force: true });
    const r = spawnSync('wasm-pack', ['build', '--target', 'web', '--out-dir', out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, `wasm-pack failed:\n${r.stderr}`);
    const env = await openBrowser({ wasmCore: out });
    envs.push(env);
    const page = await env.browser.newPage();
    const problems = captureProblems(page);
    const core = [];
    page.on('response', (res) => {
      if (new URL(res.url()).pathname.startsWith('/pkg/web/')) core.push(`${res.status()} ${new URL(res.url()).pathname}`);
    });
    await page.goto(env.url);
    await page.waitForSelector('html[data-ready="true"]', { timeout: 10000 });
    assert.equal(await page.textContent('#status'), 'Running');
    await page.waitForFunction(() => Number(document.querySelector('#count-sequential').dataset.count) > 0, null, { timeout: 5000 });
    assert.deepEqual(core.sort(), ['200 /pkg/web/stream_engine.js', '200 /pkg/web/stream_engine_bg.wasm']);
    assert.deepEqual(problems, []);
  });

  test('control: with an empty core directory the page cannot load its core', { skip }, async () => {
    rmSync(empty, { recursive: true, force: true });
    mkdirSync(empty, { recursive: true });
    const env = await openBrowser({ wasmCore: empty });
    envs.push(env);
    const page = await env.browser.newPage();
    const glue = page.waitForResponse((res) => new URL(res.url()).pathname === '/pkg/web/stream_engine.js');
    await page.goto(env.url, { waitUntil: 'load' });
    assert.equal((await glue).status(), 404);
    assert.equal(await page.getAttribute('html', 'data-ready'), null, 'the page never got ready');
  });
});
