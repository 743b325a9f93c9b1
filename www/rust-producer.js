// Loads the example Rust wasm producer (examples/rust-producer, built into pkg/rust-producer/ by
// scripts/build-rust-producer.sh) on first use. Its createRustSource(pattern, options) returns
// a ReadableStream of message arrays made by the stream-engine Rust API, handed to JS through
// wasm-streams, which the page pipes into its connections like the JS sources.
let loading = null;

export function loadRustProducer() {
  if (loading === null) {
    loading = import('/pkg/rust-producer/rust_producer.js').then(async (m) => {
      await m.default();
      return m;
    });
    loading.catch(() => {
      loading = null; // a later attempt may find it built
    });
  }
  return loading;
}
