// Issue 8 item 2: Node 20 aborted the process ("unreachable code" in V8's
// Deoptimizer::DoComputeBuiltinContinuation, SIGTRAP) under sustained overload. The cause: V8
// 11.3 inlines JS->wasm calls of exports that return one externref, and cannot deoptimize such a
// call lazily. The fix returns every JS object from wasm as several values (a Result), which V8
// never inlines (src/wasm/mod.rs `NotInlined`). Two checks:
// 1. The built module: no exported function returns a single reference value (deterministic; it
//    names the export, so a new `-> JsValue` export fails here before it can crash anyone).
// 2. A short run of the reported load in a child process (about 20 s): it must exit 0 and the
//    per-id oracle must hold. Before the fix the full pattern aborted after 15-150 s; this short
//    form guards the load path as a whole, check 1 guards the cause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

// ---- a minimal reader of the wasm binary format: function types, imports, exports --------------

const VALTYPES = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref' };

function wasmExportSignatures(bytes) {
  let pos = 8; // magic and version
  const u8 = () => bytes[pos++];
  const uleb = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = u8();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return result;
    }
  };
  const sleb = () => {
    let result = 0;
    let shift = 0;
    let b;
    do {
      b = u8();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return b & 0x40 ? result - 2 ** shift : result;
  };
  const name = () => {
    const n = uleb();
    const s = new TextDecoder().decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const valtype = () => {
    const t = u8();
    if (t === 0x63 || t === 0x64) {
      sleb(); // heap type of a (ref null? ht)
      return 'ref';
    }
    const v = VALTYPES[t];
    if (v === undefined) throw new Error(`unknown value type 0x${t.toString(16)} at ${pos - 1}`);
    return v;
  };
  const limits = () => {
    const flags = u8();
    uleb();
    if (flags & 1) uleb();
  };
  const types = [];
  const funcTypes = []; // type index of every function, imports first
  const exports = [];
  while (pos < bytes.length) {
    const id = u8();
    const size = uleb();
    const end = pos + size;
    if (id === 1) {
      for (let n = uleb(); n > 0; n--) {
        const form = u8();
        if (form !== 0x60) throw new Error(`unsupported type form 0x${form.toString(16)}`);
        const params = Array.from({ length: uleb() }, valtype);
        const results = Array.from({ length: uleb() }, valtype);
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = uleb(); n > 0; n--) {
        name();
        name();
        const kind = u8();
        if (kind === 0) funcTypes.push(uleb());
        else if (kind === 1) {
          valtype();
          limits();
        } else if (kind === 2) limits();
        else if (kind === 3) {
          valtype();
          u8();
        } else uleb(); // tag
      }
    } else if (id === 3) {
      for (let n = uleb(); n > 0; n--) funcTypes.push(uleb());
    } else if (id === 7) {
      for (let n = uleb(); n > 0; n--) {
        const exportName = name();
        const kind = u8();
        const index = uleb();
        if (kind === 0) exports.push({ name: exportName, ...types[funcTypes[index]] });
      }
    }
    pos = end;
  }
  return exports;
}

const isRef = (t) => t === 'externref' || t === 'funcref' || t === 'ref';

// Node and browsers load the same file (pkg/web).
for (const target of ['web']) {
  test(`the built module (pkg/${target}): no export returns a single reference value, so V8 never inlines a call it cannot deoptimize`, () => {
    const sigs = wasmExportSignatures(readFileSync(`${root}pkg/${target}/stream_engine_bg.wasm`));
    const bad = sigs.filter((s) => s.results.length === 1 && isRef(s.results[0])).map((s) => s.name);
    assert.deepEqual(bad, [], 'exports returning one externref: give them a NotInlined (Result) return type in src/wasm');
    // The reader works: the hot numeric exports are there with their shapes.
    const byName = new Map(sigs.map((s) => [s.name, s]));
    assert.deepEqual(byName.get('enginecore_status')?.results, ['i32']);
    assert.deepEqual(byName.get('enginecore_pushMany')?.results, ['i32']);
    // The exports that hand JS an object return several values (inlining needs at most one).
    for (const n of ['enginecore_takeDropSummary', 'enginecore_takeEvents', 'enginecore_tick', 'enginecore_metricsById']) {
      assert.ok(byName.get(n)?.results.length > 1, `${n} returns ${JSON.stringify(byName.get(n)?.results)}`);
    }
  });
}

test('the issue-8 crash pattern for 20 s in a child process (10 connections, arrays of 50 every 10 ms unawaited, slow readers): exit 0, every id accounted for', async () => {
  const child = spawn(process.execPath, [`${root}bench/soak.mjs`, '--child', 'crash', '--seconds', '20', '--sample-seconds', '10'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  assert.equal(signal, null, `killed by ${signal}: ${err}`);
  assert.equal(code, 0, `exit ${code}: ${err}\n${out.slice(-2000)}`);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l));
  const result = lines.find((l) => l.type === 'result');
  assert.ok(result, 'the child reported a result');
  assert.ok(result.written > 0 && result.delivered > 0);
  assert.deepEqual(result.oracle, { ok: true, missing: 0, duplicates: 0, unknown: 0, misrouted: 0, holes: 0, examples: [] });
  assert.equal(result.criticalDrops, 0);
  assert.equal(result.refusedWrites, 0);
  const dropped = Object.values(result.drops).reduce((a, b) => a + b, 0);
  assert.equal(result.written, result.delivered + dropped, 'delivered + dropped = written, per the oracle too');
  assert.ok(dropped > 0, 'the load was an overload (the readers are ten times slower)');
});
