// Bundles js/ into the three entry points of the package, pointing '#wasm' at the right
// wasm-bindgen build. esbuild only joins our own modules; the wasm glue stays a separate file so
// that its `import.meta.url`-relative .wasm lookup keeps working.
import { build } from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));
writeFileSync(new URL('../js/version.js', import.meta.url), `export const version = '${pkg.version}';\n`);
mkdirSync(new URL('../pkg/node/', import.meta.url), { recursive: true });
// The nodejs target of wasm-bindgen is CommonJS; the root package is "type": "module".
writeFileSync(new URL('../pkg/node/package.json', import.meta.url), '{ "type": "commonjs" }\n');

const wasmAlias = (path) => ({
  name: 'wasm-alias',
  setup(b) {
    b.onResolve({ filter: /^#wasm$/ }, () => ({ path, external: true }));
  },
});

// The gateway entry shares the main Node build's engine: its imports of the engine modules point
// at dist/node.mjs instead of bundling a second copy. `ws` stays an ordinary dependency.
const sharedEngine = {
  name: 'shared-engine',
  setup(b) {
    b.onResolve({ filter: /^\.\/(engine|handlers|recovery)\.js$/ }, () => ({ path: './node.mjs', external: true }));
  },
};

const common = { bundle: true, logLevel: 'warning', target: 'es2022', legalComments: 'none' };
await Promise.all([
  build({ ...common, entryPoints: ['js/entry-node.js'], outfile: 'dist/node.mjs', format: 'esm', platform: 'node', plugins: [wasmAlias('../pkg/node/stream_engine.js')] }),
  build({ ...common, entryPoints: ['js/entry-node.js'], outfile: 'dist/node.cjs', format: 'cjs', platform: 'node', plugins: [wasmAlias('../pkg/node/stream_engine.js')] }),
  build({ ...common, entryPoints: ['js/entry-gateway.js'], outfile: 'dist/gateway.mjs', format: 'esm', platform: 'node', external: ['ws'], plugins: [sharedEngine] }),
  build({ ...common, entryPoints: ['js/entry-web.js'], outfile: 'dist/web.mjs', format: 'esm', platform: 'browser', plugins: [wasmAlias('../pkg/web/stream_engine.js')] }),
]);
