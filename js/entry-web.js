// Browser entry: the wasm module must be fetched and compiled first, with `await init()`.
import wasmInit from '#wasm';
import { runtime } from './runtime.js';

export * from './index.js';

runtime.ready = false;
let loading = null;

/**
 * Loads the WebAssembly module. Call once before using the engine; later calls return the same
 * promise. `input` is passed to wasm-bindgen's init (a URL, Response, bytes or module); by
 * default the .wasm file next to the glue is fetched.
 */
export default function init(input) {
  if (loading === null) {
    loading = wasmInit(input === undefined ? undefined : { module_or_path: input }).then(() => {
      runtime.ready = true;
    });
  }
  return loading;
}
