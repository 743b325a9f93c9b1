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
    for (const f of ['dist/node.mjs', 'dist/node.cjs', 'dist/web.mjs', 'pkg/node/stream_engine_bg.wasm', 'pkg/web/stream_engine_bg.wasm', 'pkg/node/package.json', 'types/index.d.ts', 'bin/nodeflow-stream.mjs']) {
      assert.ok(files.includes(f), `tarball has ${f}`);
    }
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('target/')), 'no sources or build dirs');
    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(dir, info.filename)], { cwd: app, encoding: 'utf8' });
    assert.ok(existsSync(join(app, 'node_modules/@nodeflow/stream-engine/pkg/node/stream_engine_bg.wasm')));
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
      e.destroy();`;
    writeFileSync(join(app, 'esm.mjs'), esm);
    let r = spawnSync(process.execPath, ['esm.mjs'], { cwd: app, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'true 1');
    writeFileSync(join(app, 'cjs.cjs'), `const { StreamEngine } = require('@nodeflow/stream-engine'); const e = new StreamEngine(); console.log(e.createConnection('a','b','c','d')); e.destroy();`);
    r = spawnSync(process.execPath, ['cjs.cjs'], { cwd: app, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'a:c->b:d');
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
