// `npm pack` must produce a tarball that a fresh project with no Rust toolchain can install and use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the packed tarball installs and works in a fresh project (ESM and CommonJS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    const files = info.files.map((f) => f.path);
    for (const f of ['dist/node.mjs', 'dist/node.cjs', 'dist/web.mjs', 'dist/index.d.cts', 'pkg/web/stream_engine_bg.wasm', 'pkg/stages/stream_engine_stages.js', 'types/index.d.ts', 'types/wasm.d.ts', 'bin/nodeflow-stream.mjs']) {
      assert.ok(files.includes(f), `tarball has ${f}`);
    }
    // One copy of each .wasm (the engine, and the window/downsample stages loaded on first use),
    // shared by Node and browsers.
    assert.deepEqual(files.filter((f) => f.endsWith('.wasm')).sort(), ['pkg/stages/stream_engine_stages_bg.wasm', 'pkg/web/stream_engine_bg.wasm']);
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('target/')), 'no sources or build dirs');
    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(dir, info.filename)], { cwd: app, encoding: 'utf8' });
    assert.ok(existsSync(join(app, 'node_modules/@nodeflow/stream-engine/pkg/web/stream_engine_bg.wasm')));
    const esm = `
      import init, { StreamEngine } from '@nodeflow/stream-engine';
      await init();
      const e = new StreamEngine({ batchTimeout: 0 });
      const id = e.createConnection('a', 'b', 'o', 'i');
      const c = e.getConnection(id);
      const m = { id: '1', timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'o', data: 1 };
      await c.writer.write(m);
      const { value } = await c.readable.getReader().read();
      console.log(value[0] === m, e.getMetrics(id).messagesOut);
      e.destroy();
      // The stages module (pkg/stages) loads on first use, synchronously in Node.
      const { WindowAggregator } = await import('@nodeflow/stream-engine');
      const w = new WindowAggregator({ size: 10 });
      console.log(w.add([{ id: 'w1', timestamp: 1, data: 2 }, { id: 'w2', timestamp: 12, data: 3 }]).results.map((x) => x.data.sum).join());`;
    writeFileSync(join(app, 'esm.mjs'), esm);
    let r = spawnSync(process.execPath, ['esm.mjs'], { cwd: app, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'true 1\n2');
    writeFileSync(join(app, 'cjs.cjs'), `const { StreamEngine, downsampleLTTB } = require('@nodeflow/stream-engine'); const e = new StreamEngine(); console.log(e.createConnection('a','b','c','d')); e.destroy(); console.log(downsampleLTTB([5, 1, 9, 2].map((data, timestamp) => ({ timestamp, data })), 3).map((x) => x.data).join());`);
    r = spawnSync(process.execPath, ['cjs.cjs'], { cwd: app, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'a:c->b:d\n5,9,2');
    assert.ok(readdirSync(join(app, 'node_modules/.bin')).includes('nodeflow-stream'), 'the CLI is a bin');
    // The gateway subpath, with its `ws` dependency installed alongside.
    assert.ok(files.includes('dist/gateway.mjs') && files.includes('types/gateway.d.ts'), 'tarball has the gateway');
    writeFileSync(join(app, 'gw.mjs'), `
      import { createGateway } from '@nodeflow/stream-engine/gateway';
      const gw = await createGateway({ port: 0, topics: ['t'] });
      console.log(typeof gw.port, gw.topic('t').subscribers);
      await gw.close();`);
    r = spawnSync(process.execPath, ['gw.mjs'], { cwd: app, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'number 0');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('@arethetypeswrong/cli finds no problem in the packed tarball (ESM, CommonJS, bundler; ./wasm, ./wasm-stages, ./gateway and ./redis too)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-attw-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    const r = spawnSync(process.execPath, [join(root, 'node_modules/@arethetypeswrong/cli/dist/index.js'), join(dir, info.filename), '--format', 'json'], { cwd: root, encoding: 'utf8' });
    const report = JSON.parse(r.stdout);
    // The gateway and the Redis bridge are Node ES modules only (documented): a CommonJS require
    // of them resolving to ESM is what they are. Anything else is a problem.
    const esmOnly = new Set(['./gateway', './redis']);
    const problems = report.analysis.problems.filter((p) => !(p.kind === 'CJSResolvesToESM' && esmOnly.has(p.entrypoint)));
    assert.deepEqual(problems, [], JSON.stringify(problems).slice(0, 2000));
    const entrypoints = Object.keys(report.analysis.entrypoints);
    assert.deepEqual(entrypoints.sort(), ['.', './gateway', './package.json', './redis', './wasm', './wasm-stages']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TypeScript with --module node16 type-checks require() of the package from a .cts file (no TS1479)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-cts-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    execFileSync('tar', ['xzf', join(dir, info.filename), '-C', dir]);
    execFileSync('mkdir', ['-p', join(dir, 'app/node_modules/@nodeflow')]);
    execFileSync('mv', [join(dir, 'package'), join(dir, 'app/node_modules/@nodeflow/stream-engine')]);
    writeFileSync(join(dir, 'app/package.json'), JSON.stringify({ name: 'app', private: true }));
    writeFileSync(
      join(dir, 'app/main.cts'),
      `import engine = require('@nodeflow/stream-engine');\nconst e: engine.StreamEngine = new engine.StreamEngine({ batchTimeout: 0 });\nconst id: string = e.createConnection('a', 'b', 'o', 'i');\ne.destroy();\nexport = id;\n`,
    );
    const compilerOptions = { noEmit: true, strict: true, module: 'node16', moduleResolution: 'node16', lib: ['ES2022', 'DOM'], types: [] };
    writeFileSync(join(dir, 'app/tsconfig.json'), JSON.stringify({ compilerOptions, files: ['main.cts'] }));
    const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: join(dir, 'app'), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('esbuild bundles an app that imports the .wasm through @nodeflow/stream-engine/wasm', async () => {
  const { build } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-esbuild-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    execFileSync('tar', ['xzf', join(dir, info.filename), '-C', dir]);
    execFileSync('mkdir', ['-p', join(dir, 'app/node_modules/@nodeflow')]);
    execFileSync('mv', [join(dir, 'package'), join(dir, 'app/node_modules/@nodeflow/stream-engine')]);
    writeFileSync(join(dir, 'app/main.js'), `import init, { StreamEngine } from '@nodeflow/stream-engine';\nimport wasmUrl from '@nodeflow/stream-engine/wasm';\nawait init(wasmUrl);\nnew StreamEngine().destroy();\n`);
    const result = await build({ absWorkingDir: join(dir, 'app'), entryPoints: ['main.js'], bundle: true, format: 'esm', platform: 'browser', outdir: 'out', loader: { '.wasm': 'file' }, logLevel: 'silent', metafile: true });
    const emitted = Object.keys(result.metafile.outputs);
    const wasm = emitted.filter((f) => f.endsWith('.wasm'));
    assert.equal(wasm.length, 1, `one .wasm asset: ${emitted}`);
    assert.ok(readdirSync(join(dir, 'app/out')).some((f) => f.endsWith('.wasm')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
