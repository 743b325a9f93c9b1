/**
 * `@nodeflow/stream-engine/wasm`: the engine's WebAssembly module, for bundlers that need to emit
 * it as an asset. With a file or asset loader the import is its URL; pass it to `init()`:
 *
 * ```ts
 * import init from '@nodeflow/stream-engine';
 * import wasmUrl from '@nodeflow/stream-engine/wasm'; // esbuild: --loader:.wasm=file
 * await init(wasmUrl);
 * ```
 *
 * `@nodeflow/stream-engine/wasm-stages` is the second module, the window and downsample stages'
 * (loaded on first use of a stage); pass its URL to `initStages()` the same way.
 */
declare const wasmUrl: string;
export default wasmUrl;
