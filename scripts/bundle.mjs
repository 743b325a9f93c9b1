// Bundles js/ into the entry points of the package (Node ESM + the gateway, Node CJS, web), pointing '#wasm' at the wasm-bindgen
// glue (pkg/web, the one build of the .wasm that Node and browsers share). esbuild only joins our
// own modules for ESM; the glue stays a separate file so that its `import.meta.url`-relative
// .wasm lookup keeps working in browsers and bundlers. The CommonJS build includes the glue
// (CommonJS cannot import an ES module synchronously).
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));
writeFileSync(new URL('../js/version.js', import.meta.url), `export const version = '${pkg.version}';\n`);

const GLUE = '../pkg/web/stream_engine.js';
const WASM = '../pkg/web/stream_engine_bg.wasm';
// The second module: the window/downsample stages (crates/stages), loaded on first use.
const STAGES_GLUE = '../pkg/stages/stream_engine_stages.js';
const STAGES_WASM = '../pkg/stages/stream_engine_stages_bg.wasm';

/**
 * '#wasm' / '#wasm-stages' -> the glue of the main / stages module (external or bundled);
 * '#wasm-bytes' -> the main .wasm read from disk; '#wasm-stages-bytes' -> a function that reads
 * the stages .wasm (called on first use only).
 */
const wasmAlias = ({ external, cjs }) => ({
  name: 'wasm-alias',
  setup(b) {
    const glue = (rel) => (external ? { path: rel, external: true } : { path: fileURLToPath(new URL(rel, import.meta.url)) });
    b.onResolve({ filter: /^#wasm$/ }, () => glue(GLUE));
    b.onResolve({ filter: /^#wasm-stages$/ }, () => glue(STAGES_GLUE));
    b.onResolve({ filter: /^#wasm(-stages)?-bytes$/ }, (a) => ({ path: a.path, namespace: 'wasm-bytes' }));
    b.onLoad({ filter: /.*/, namespace: 'wasm-bytes' }, (a) => {
      const file = JSON.stringify(a.path === '#wasm-bytes' ? WASM : STAGES_WASM);
      const read = cjs ? `readFileSync(join(__dirname, ${file}))` : `readFileSync(new URL(${file}, import.meta.url))`;
      const imports = `import { readFileSync } from 'node:fs';${cjs ? " import { join } from 'node:path';" : ''}`;
      return { resolveDir: '.', contents: a.path === '#wasm-bytes' ? `${imports} export default ${read};` : `${imports} export default () => ${read};` };
    });
  },
});

// CommonJS consumers get the same declarations as a .d.cts: under "type": "module" the .d.ts is
// ESM, and TypeScript (module node16/nodenext) would refuse require() of it (TS1479).
mkdirSync(new URL('../dist/', import.meta.url), { recursive: true });
for (const name of ['index', 'wasm']) {
  writeFileSync(new URL(`../dist/${name}.d.cts`, import.meta.url), readFileSync(new URL(`../types/${name}.d.ts`, import.meta.url)));
}

const common = { bundle: true, logLevel: 'warning', target: 'es2022', legalComments: 'none' };
await Promise.all([
  // Node ESM: the main entry and the gateway in one build with code splitting, so that they share
  // one chunk of engine code, one '#wasm' instance and one set of classes in a process.
  // Chunks stay in dist/ beside the entries: the glue and .wasm paths are relative to it.
  build({ ...common, entryPoints: { node: 'js/entry-node.js', gateway: 'js/entry-gateway.js' }, outdir: 'dist', outExtension: { '.js': '.mjs' }, splitting: true, chunkNames: 'chunk-[hash]', format: 'esm', platform: 'node', external: ['ws'], plugins: [wasmAlias({ external: true, cjs: false })] }),
  // The glue's default init path uses import.meta.url; Node never calls it (initSync with bytes).
  build({ ...common, entryPoints: ['js/entry-node.js'], outfile: 'dist/node.cjs', format: 'cjs', platform: 'node', plugins: [wasmAlias({ external: false, cjs: true })], logOverride: { 'empty-import-meta': 'silent' } }),
  build({ ...common, entryPoints: ['js/entry-web.js'], outfile: 'dist/web.mjs', format: 'esm', platform: 'browser', plugins: [wasmAlias({ external: true, cjs: false })] }),
]);
