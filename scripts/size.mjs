#!/usr/bin/env node
// `npm run size`: what a browser downloads for a small app that uses the engine. Builds a Vite
// production bundle of an app (StreamEngine + a backpressure handler + one connection, as a user
// would write it, importing the package by name) and prints raw, gzip and brotli sizes per file
// and the total of the files the page loads. Writes bench/results/size.json.
//
//   node scripts/size.mjs [--json]     (the package must be built: bash scripts/build.sh)
import { build } from 'vite';
import { mkdirSync, rmSync, writeFileSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The target of issue 12: .wasm plus JS at most 60 kB (60,000 bytes) gzipped. Sizes here are
 * in kB of 1000 bytes, as in the figures. */
export const TARGET_GZIP = 60_000;

const APP = `import init, { StreamEngine, DefaultBackpressureHandler } from '@nodeflow/stream-engine';

await init();
const engine = new StreamEngine({ batchTimeout: 16 });
engine.setBackpressureHandler(new DefaultBackpressureHandler());
const id = engine.createConnection('sensor', 'chart', 'out', 'in');
const { writer, readable } = engine.getConnection(id);
await writer.write({ id: '1', timestamp: Date.now(), sourceNodeId: 'sensor', targetNodeId: 'chart', port: 'out', data: 42 });
const { value } = await readable.getReader().read();
document.body.textContent = value.length + ' ' + engine.getMetrics(id).messagesOut;
`;

/** Builds the app in `dir` and returns the emitted files with their sizes. */
export async function measure(dir = join(root, 'build/size-app')) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'node_modules/@nodeflow'), { recursive: true });
  // The app imports the package by name, resolved through its package.json exports (the
  // browser condition), exactly as in a project that installed it.
  symlinkSync(root, join(dir, 'node_modules/@nodeflow/stream-engine'), 'dir');
  writeFileSync(join(dir, 'index.html'), '<!doctype html><html><head><meta charset="utf-8"><script type="module" src="./main.js"></script></head><body></body></html>\n');
  writeFileSync(join(dir, 'main.js'), APP);
  await build({
    root: dir,
    configFile: false,
    logLevel: 'warn',
    build: { outDir: join(dir, 'dist'), emptyOutDir: true, target: 'es2022', reportCompressedSize: false },
  });
  const out = join(dir, 'dist');
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(js|mjs|wasm)$/.test(name)) {
        const bytes = readFileSync(p);
        files.push({
          file: relative(out, p),
          raw: bytes.length,
          gzip: gzipSync(bytes, { level: 9 }).length,
          brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
        });
      }
    }
  };
  walk(out);
  files.sort((a, b) => b.raw - a.raw);
  // What the page loads: the files index.html references, and every emitted file a loaded JS
  // file names (its imports, its asset URLs), transitively. Vite emits an asset for each
  // `new URL(..., import.meta.url)` it transforms, even in code it then tree-shakes away (here
  // the window/downsample stages' .wasm, which only a used stage would import): such files are
  // listed, marked, and not counted.
  const text = (f) => readFileSync(join(out, f), 'utf8');
  const loaded = new Set();
  const visit = (src) => {
    for (const f of files) {
      const base = f.file.split('/').pop();
      if (!loaded.has(f.file) && src.includes(base)) {
        loaded.add(f.file);
        if (/\.m?js$/.test(f.file)) visit(text(f.file));
      }
    }
  };
  visit(readFileSync(join(out, 'index.html'), 'utf8'));
  for (const f of files) f.loaded = loaded.has(f.file);
  const total = files.filter((f) => f.loaded).reduce((t, f) => ({ raw: t.raw + f.raw, gzip: t.gzip + f.gzip, brotli: t.brotli + f.brotli }), { raw: 0, gzip: 0, brotli: 0 });
  return { files, total, targetGzip: TARGET_GZIP, withinTarget: total.gzip <= TARGET_GZIP };
}

const kb = (n) => `${(n / 1000).toFixed(1)} kB`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await measure();
  if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else {
    console.log('Vite production build of a small app using StreamEngine with a handler:');
    console.table(Object.fromEntries([...r.files.map((f) => [f.file, { raw: kb(f.raw), gzip: kb(f.gzip), brotli: kb(f.brotli), loaded: f.loaded ? 'yes' : 'no (not counted)' }]), ['total loaded', { raw: kb(r.total.raw), gzip: kb(r.total.gzip), brotli: kb(r.total.brotli), loaded: '' }]]));
    console.log(`target: .wasm + JS <= ${kb(TARGET_GZIP)} gzipped: ${r.withinTarget ? 'met' : 'MISSED'}`);
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/size.json'), JSON.stringify({ date: new Date().toISOString(), ...r }, null, 2) + '\n');
}
