// `npm run bench:gateway`: one server, many WebSocket clients on loopback, a steady offered load
// across topics, a share of clients reading ten times slower than the rest. Two phases in the same
// run, on the same load: the gateway (per-client engine connections, socket-paced pump) and the
// hand-written broadcast loop of the streaming design record (ported from Go to ws: every message
// sent to every subscriber of its topic as soon as it is published).
//
//   node bench/gateway.mjs [--duration 60] [--clients 1000] [--rate 20000] [--topics 100]
//                          [--slow 0.1] [--slow-factor 10] [--pad 100] [--procs 2]
//                          [--phases gateway,broadcast] [--json file]
//                          [--target-latency ms] [--batch-timeout 10] [--ack-window 32768]
//
// The gateway's subscriptions use the 'priority' drop policy (bufferSize 500, batches of at most
// 100 messages, batchTimeout 10 ms; with --target-latency, the adaptive handler instead) and a
// 32 KiB ack window.
//
// Processes: this one coordinates; a server process per phase (the producer runs inside it, as an
// in-process publisher would); `procs` client processes. Latency is end to end: the client's
// Date.now() minus the message's timestamp, set when the producer made it (same machine clock).
// The clients are kept cheap (they share the cores with the server): they find the timestamps
// and priorities in a frame's bytes instead of parsing it, and skip ws's UTF-8 validation; their
// CPU is reported. With --duration of 120 s or more, the server's memory is also reported every
// 10 s with its trend after the first minute (least-squares slope of RSS and JS heap).
import { fork } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] !== undefined && !all[i + 1].startsWith('--') ? all[i + 1] : 'true']);
    return acc;
  }, []),
);
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const cfg = {
  duration: num('duration', 60),
  clients: num('clients', 1000),
  rate: num('rate', 20000),
  topics: num('topics', 100),
  slow: num('slow', 0.1),
  slowFactor: num('slow-factor', 10),
  pad: num('pad', 100),
  procs: num('procs', 2),
  phases: (args.phases ?? 'gateway,broadcast').split(','),
};
const PRIORITIES = [
  ['critical', 0.05],
  ['high', 0.2],
  ['normal', 0.25],
  ['low', 0.5],
];
const PRIO_NAMES = PRIORITIES.map((p) => p[0]);
const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Server process: the gateway or the broadcast loop, plus the producer.
async function server() {
  const mode = args.mode;
  let publish;
  let stop;
  const drops = { critical: 0, high: 0, normal: 0, low: 0 }; // shed by the gateway's policy, by priority
  let deadLetters = 0; // buffered for a client when its socket closed (it would resume by seq)
  let port;
  let frames; // () => { frames, messages } sent to clients so far
  let wasmBytes = () => 0; // the gateway engine's WebAssembly memory
  if (mode === 'gateway') {
    const { createGateway } = await import('@nodeflow/stream-engine/gateway');
    const topics = Array.from({ length: cfg.topics }, (_, i) => `t${i}`);
    const gw = await createGateway({ port: 0, topics, maxClients: 100000, onDrop: (m, reason) => (reason === 'dead-letter' ? deadLetters++ : drops[m.metadata.priority]++), ackWindow: num('ack-window', 32768), policy: { bufferSize: 500, maxBatchSize: 100, batchTimeout: num('batch-timeout', 10), ...(args['target-latency'] === undefined ? { dropPolicy: 'priority' } : { targetLatency: num('target-latency', 50) }) } });
    port = gw.port;
    publish = (topic, batch) => gw.publish(topic, batch);
    frames = () => ({ frames: gw.stats.framesSent, messages: gw.stats.messagesSent, shared: gw.stats.framesShared, direct: gw.stats.framesDirect });
    wasmBytes = () => gw.engine._system().wasmMemoryBytes;
    stop = () => gw.close();
  } else {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((r) => wss.once('listening', r));
    port = wss.address().port;
    const subs = new Map(); // topic -> Set<ws>
    wss.on('connection', (ws) => {
      ws.on('message', (d) => {
        let f;
        try {
          f = JSON.parse(d.toString());
        } catch {
          return;
        }
        if (f.op === 'subscribe' && typeof f.topic === 'string') {
          if (!subs.has(f.topic)) subs.set(f.topic, new Set());
          subs.get(f.topic).add(ws);
          ws.send(JSON.stringify({ op: 'subscribed', topic: f.topic }));
        }
      });
      ws.on('close', () => {
        for (const s of subs.values()) s.delete(ws);
      });
      ws.on('error', () => {});
    });
    // BroadcastToAll, per topic: serialise once, write to every client.
    let sent = 0;
    publish = (topic, batch) => {
      const set = subs.get(topic);
      for (const m of batch) {
        const s = JSON.stringify(m);
        if (set) {
          for (const ws of set) {
            if (ws.readyState === 1) {
              ws.send(s);
              sent++;
            }
          }
        }
      }
    };
    frames = () => ({ frames: sent, messages: sent });
    stop = () => new Promise((r) => {
      for (const ws of wss.clients) ws.terminate();
      wss.close(() => r());
    });
  }
  process.send({ type: 'port', port });
  const published = {}; // topic -> { total, critical, ... }
  let producing = null;
  const samples = [];
  let lastCpu = process.cpuUsage();
  let lastT = performance.now();
  // How late the server's event loop runs: what every message sent from it waits on top.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const sampler = setInterval(() => {
    const cpu = process.cpuUsage(lastCpu);
    const t = performance.now();
    const mu = process.memoryUsage();
    samples.push({ t: Date.now(), rss: mu.rss, heap: mu.heapUsed, heapTotal: mu.heapTotal, external: mu.external, wasm: wasmBytes(), cpu: (cpu.user + cpu.system) / 1000 / (t - lastT) });
    if (args.verbose) console.error('server', samples.at(-1));
    lastCpu = process.cpuUsage();
    lastT = t;
  }, 1000);
  process.on('message', async (m) => {
    if (m.type === 'start') {
      loopDelay.enable();
      const pad = 'x'.repeat(cfg.pad);
      const t0 = performance.now();
      let sent = 0;
      let seq = 0;
      producing = setInterval(() => {
        const due = Math.floor(((performance.now() - t0) / 1000) * cfg.rate) - sent;
        if (due <= 0) return;
        const byTopic = new Map();
        const now = Date.now();
        for (let i = 0; i < due; i++) {
          const n = seq++;
          const topic = `t${n % cfg.topics}`;
          // Priority mix by a fixed pattern (reproducible): 5% critical, 20% high, 25% normal, 50% low.
          const r = (n * 7919) % 100;
          const priority = r < 5 ? 'critical' : r < 25 ? 'high' : r < 50 ? 'normal' : 'low';
          const msg = { id: `m${n}`, timestamp: now, sourceNodeId: 'bench', targetNodeId: '*', port: 'out', data: { v: n, pad }, metadata: { priority } };
          if (!byTopic.has(topic)) byTopic.set(topic, []);
          byTopic.get(topic).push(msg);
          const p = (published[topic] ??= { total: 0, critical: 0, high: 0, normal: 0, low: 0 });
          p.total++;
          p[priority]++;
        }
        sent += due;
        for (const [topic, batch] of byTopic) publish(topic, batch);
      }, 5);
    } else if (m.type === 'stop-producing') {
      clearInterval(producing);
      loopDelay.disable();
      const loop = { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
      process.send({ type: 'published', published, drops, deadLetters, sent: frames(), loop });
    } else if (m.type === 'stop') {
      clearInterval(sampler);
      process.send({ type: 'samples', samples });
      await stop();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Client process: `count` clients, each subscribed to one topic; the slow ones pause their socket
// after each frame for as long as their (10x lower) capacity needs.
async function clients() {
  const { WebSocket } = await import('ws');
  const TS_KEY = Buffer.from('"timestamp":');
  const PRIO_KEY = Buffer.from('"priority":"');
  const DATA_HEAD = Buffer.from('{"op":"data"');
  const MSG_HEAD = Buffer.from('{"id":');
  const PRIO_BY_BYTE = { 99: 'critical', 104: 'high', 110: 'normal', 108: 'low' }; // c h n l
  const starts = (d, head) => d.length >= head.length && d.compare(head, 0, head.length, 0, head.length) === 0;
  const count = Number(args.count);
  const first = Number(args.first);
  const url = `ws://127.0.0.1:${args.port}/`;
  const perClient = cfg.rate / cfg.topics; // msg/s offered to each client
  const slowMsPerMessage = 1000 / (perClient / cfg.slowFactor);
  const hist = { fast: new Uint32Array(600001), slow: new Uint32Array(600001) }; // 0.1 ms buckets up to 60 s
  const stats = [];
  let measuring = false;
  const list = [];
  for (let i = 0; i < count; i++) {
    const idx = first + i;
    const slow = cfg.slow > 0 && Math.floor(idx / cfg.topics) % Math.round(1 / cfg.slow) === 0; // one slow client per topic per 1/slow
    const topic = `t${idx % cfg.topics}`;
    const st = { idx, topic, slow, subscribed: false, excluded: false, received: 0, byPriority: { critical: 0, high: 0, normal: 0, low: 0 }, reconnects: 0, closed: null };
    stats.push(st);
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    list.push(ws);
    const h = slow ? hist.slow : hist.fast;
    let debt = 0;
    // Acknowledgements as connectGateway sends them: once a quarter of the gateway's window is
    // processed, or 100 ms after a frame (for a slow client: when it has processed them).
    let acks = 0;
    let ackBytes = 0;
    let ackWindow = 128 * 1024;
    let ackTimer = null;
    const flushAck = () => {
      clearTimeout(ackTimer);
      ackTimer = null;
      if (acks > 0 && ws.readyState === 1) ws.send(`{"op":"ack","frames":${acks}}`);
      acks = 0;
      ackBytes = 0;
    };
    let pausedNow = false;
    // Reading is a scan of the frame's bytes, not JSON.parse: the clients share the machine's
    // cores with the server, and the measurement is about the server. The bench's own messages
    // have a fixed shape (`"timestamp":<ms>` then `"priority":"<name>"`), so counting them is a
    // search for those keys; control frames (rare) are parsed.
    const take = (d, from) => {
      let k = 0;
      const now = Date.now();
      for (let at = d.indexOf(TS_KEY, from); at !== -1; at = d.indexOf(TS_KEY, at)) {
        at += TS_KEY.length;
        let ts = 0;
        for (let c = d[at]; c >= 48 && c <= 57; c = d[++at]) ts = ts * 10 + (c - 48);
        const p = d.indexOf(PRIO_KEY, at);
        const name = p === -1 ? undefined : PRIO_BY_BYTE[d[p + PRIO_KEY.length]];
        k++;
        st.received++;
        if (name !== undefined) st.byPriority[name]++;
        if (measuring) h[Math.min(600000, Math.max(0, Math.round((now - ts) * 10)))]++;
      }
      return k;
    };
    ws.on('message', (d) => {
      let k = 0;
      if (starts(d, DATA_HEAD)) {
        k = take(d, DATA_HEAD.length);
        // Acknowledged once processed, as connectGateway does: at once for a fast client, after
        // its (simulated) processing time for a slow one.
        acks++;
        ackBytes += d.length;
        if (!slow) {
          if (ackBytes >= ackWindow / 4) flushAck();
          else if (ackTimer === null) ackTimer = setTimeout(flushAck, 100);
        }
      } else if (starts(d, MSG_HEAD)) {
        k = take(d, 0); // the broadcast loop: one message per frame
      } else {
        const f = JSON.parse(d.toString());
        if (f.op === 'subscribed') {
          st.subscribed = true;
        } else if (f.op === 'welcome') {
          if (f.ackWindow > 0) ackWindow = f.ackWindow;
          ws.send('{"op":"ack","frames":0}');
          ws.send(JSON.stringify({ op: 'subscribe', topic }));
        }
      }
      if (slow && k > 0) {
        // Reading costs this client k x its per-message time: frames that arrive while it is
        // paused (already in ws's buffer) add to the debt served by the next pause.
        debt += k * slowMsPerMessage;
        if (!pausedNow) {
          pausedNow = true;
          ws._socket.pause();
          const rest = () => {
            if (debt > 0) {
              const d = debt;
              debt = 0;
              setTimeout(rest, d);
            } else {
              pausedNow = false;
              flushAck();
              ws._socket.resume();
            }
          };
          rest();
        }
      }
    });
    ws.on('open', () => {
      if (args.mode === 'broadcast') ws.send(JSON.stringify({ op: 'subscribe', topic }));
    });
    ws.on('close', (code) => {
      st.closed = code;
    });
    ws.on('error', () => {
      if (st.closed === null) st.closed = 'error';
    });
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10)); // do not stampede the accept queue
  }
  // Every client subscribed (the server answered) before the load starts; one that could not
  // connect or subscribe within 60 s is left out of the figures (and counted).
  const deadline = Date.now() + 60000;
  while (stats.some((st) => !st.subscribed && st.closed === null) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const st of stats) if (!st.subscribed) st.excluded = true;
  process.send({ type: 'connected' });
  let cpuFrom = process.cpuUsage();
  let cpuT = performance.now();
  // How late this process's own event loop runs: part of every latency it measures.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  process.on('message', (m) => {
    if (m.type === 'measure') {
      measuring = true;
      loopDelay.enable();
      cpuFrom = process.cpuUsage();
      cpuT = performance.now();
    }
    else if (m.type === 'report') {
      measuring = false;
      // Sparse histograms: [bucket, count] pairs.
      const sparse = (h) => {
        const out = [];
        for (let i = 0; i < h.length; i++) if (h[i] > 0) out.push([i, h[i]]);
        return out;
      };
      for (const ws of list) ws.terminate();
      const used = process.cpuUsage(cpuFrom);
      const cpu = (used.user + used.system) / 1000 / (performance.now() - cpuT);
      loopDelay.disable();
      const loop = { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6 };
      process.send({ type: 'report', stats, cpu, loop, hist: { fast: sparse(hist.fast), slow: sparse(hist.slow) } }, () => process.exit(0));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Coordinator.
const once = (child, type) => new Promise((resolve) => {
  const h = (m) => {
    if (m.type === type) {
      child.off('message', h);
      resolve(m);
    }
  };
  child.on('message', h);
});

function percentile(hist, q) {
  let total = 0;
  for (const c of hist) total += c;
  if (total === 0) return NaN;
  let acc = 0;
  const target = q * total;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i];
    if (acc >= target) return i / 10;
  }
  return NaN;
}

async function phase(mode) {
  const srv = fork(self, ['--role', 'server', '--mode', mode, ...process.argv.slice(2)], { stdio: 'inherit', execArgv: process.env.BENCH_SERVER_FLAGS ? process.env.BENCH_SERVER_FLAGS.split(' ') : [] });
  const { port } = await once(srv, 'port');
  if (args.verbose) console.error('server on', port);
  const per = Math.ceil(cfg.clients / cfg.procs);
  const kids = [];
  for (let p = 0; p < cfg.procs; p++) {
    const count = Math.min(per, cfg.clients - p * per);
    if (count <= 0) break;
    kids.push(fork(self, ['--role', 'clients', '--mode', mode, '--port', String(port), '--first', String(p * per), '--count', String(count), ...process.argv.slice(2)], { stdio: 'inherit' }));
  }
  await Promise.all(kids.map((k) => once(k, 'connected')));
  if (args.verbose) console.error('clients connected');
  await new Promise((r) => setTimeout(r, 1000)); // subscriptions settle
  const t0 = Date.now();
  if (args.verbose) console.error('start');
  srv.send({ type: 'start' });
  for (const k of kids) k.send({ type: 'measure' });
  await new Promise((r) => setTimeout(r, cfg.duration * 1000));
  if (args.verbose) console.error('stop producing');
  srv.send({ type: 'stop-producing' });
  const { published, drops, deadLetters, sent, loop } = await once(srv, 'published');
  await new Promise((r) => setTimeout(r, 2000)); // in-flight messages arrive
  const reports = await Promise.all(kids.map((k) => {
    const p = once(k, 'report');
    k.send({ type: 'report' });
    return p;
  }));
  srv.send({ type: 'stop' });
  const { samples } = await once(srv, 'samples');
  const hist = { fast: new Array(600001).fill(0), slow: new Array(600001).fill(0) };
  const stats = [];
  for (const r of reports) {
    stats.push(...r.stats);
    for (const k of ['fast', 'slow']) for (const [i, n] of r.hist[k]) hist[k][i] += n;
  }
  const agg = (slow) => {
    const a = { clients: 0, offered: 0, received: 0, offeredBy: { critical: 0, high: 0, normal: 0, low: 0 }, receivedBy: { critical: 0, high: 0, normal: 0, low: 0 }, closed: 0, closeCodes: {}, excluded: 0 };
    for (const s of stats) {
      if (s.slow !== slow) continue;
      if (s.excluded) {
        a.excluded++;
        continue;
      }
      const p = published[s.topic] ?? { total: 0, critical: 0, high: 0, normal: 0, low: 0 };
      a.clients++;
      a.offered += p.total;
      a.received += s.received;
      if (s.closed !== null) {
        a.closed++;
        a.closeCodes[s.closed] = (a.closeCodes[s.closed] ?? 0) + 1;
      }
      for (const n of PRIO_NAMES) {
        a.offeredBy[n] += p[n];
        a.receivedBy[n] += s.byPriority[n];
      }
    }
    return a;
  };
  const fast = agg(false);
  const slow = agg(true);
  const cpuAvg = samples.length ? samples.reduce((n, s) => n + s.cpu, 0) / samples.length : NaN;
  return {
    mode,
    seconds: (Date.now() - t0) / 1000,
    fast: { ...fast, deliveredRatio: fast.received / fast.offered, p50: percentile(hist.fast, 0.5), p90: percentile(hist.fast, 0.9), p95: percentile(hist.fast, 0.95), p99: percentile(hist.fast, 0.99), p999: percentile(hist.fast, 0.999), max: percentile(hist.fast, 1) },
    slow: { ...slow, deliveredRatio: slow.received / slow.offered, p50: percentile(hist.slow, 0.5), p99: percentile(hist.slow, 0.99), droppedBy: Object.fromEntries(PRIO_NAMES.map((n) => [n, slow.offeredBy[n] - slow.receivedBy[n]])) },
    drops: mode === 'gateway' ? drops : null,
    deadLetters: mode === 'gateway' ? deadLetters : null,
    rss: samples.map((s) => Math.round(s.rss / 1048576)),
    heap: samples.map((s) => Math.round(s.heap / 1048576)),
    times: samples.map((s) => s.t),
    heapTotal: samples.map((s) => Math.round(s.heapTotal / 1048576)),
    external: samples.map((s) => Math.round(s.external / 1048576)),
    wasm: samples.map((s) => Math.round(s.wasm / 1048576)),
    clientCpu: reports.map((r) => r.cpu),
    clientLoop: reports.map((r) => r.loop),
    frames: sent.frames,
    direct: sent.direct ?? null,
    shared: sent.shared ?? null,
    loop,
    messagesPerFrame: sent.messages / sent.frames,
    cpu: cpuAvg,
  };
}

/** Least-squares slope of `ys` sampled at times `ts` (ms), in units per minute. */
function slopePerMinute(ts, ys) {
  const n = ys.length;
  if (n < 2) return NaN;
  const xs = ts.map((t) => (t - ts[0]) / 60000);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return num / den;
}

/** The long run's memory figures: samples every 10 s, and the trend once the buffers are full. */
function memorySummary(r) {
  // Samples are due every second; index by their times, since a busy loop delays them.
  const t0 = r.times[0];
  const every10 = (xs) => {
    const out = [];
    for (let i = 0, next = 0; i < xs.length; i++) {
      if (r.times[i] - t0 >= next) {
        out.push(xs[i]);
        next += 10000;
      }
    }
    return out;
  };
  const warm = r.times.findIndex((t) => t - t0 >= 60000);
  return {
    rss10: every10(r.rss),
    heap10: every10(r.heap),
    heapTotal10: every10(r.heapTotal),
    external10: every10(r.external),
    start: r.rss[0],
    max: Math.max(...r.rss),
    end: r.rss.at(-1),
    slope: slopePerMinute(r.times.slice(warm), r.rss.slice(warm)),
    heapSlope: slopePerMinute(r.times.slice(warm), r.heap.slice(warm)),
    wasmStart: r.wasm[0],
    wasmEnd: r.wasm.at(-1),
  };
}

async function main() {
  console.log(`gateway bench: ${cfg.clients} clients (${Math.round(cfg.slow * 100)}% ${cfg.slowFactor}x slower), ${cfg.rate} msg/s over ${cfg.topics} topics, ${cfg.duration} s per phase, ${cfg.procs} client processes`);
  const results = [];
  for (const mode of cfg.phases) {
    console.log(`-- ${mode}`);
    const r = await phase(mode);
    results.push(r);
    const q = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    console.log(`   fast clients: p50 ${q(r.fast.p50)} ms, p90 ${q(r.fast.p90)}, p95 ${q(r.fast.p95)}, p99 ${q(r.fast.p99)} ms, p99.9 ${q(r.fast.p999)}, max ${q(r.fast.max)}, delivered ${(100 * r.fast.deliveredRatio).toFixed(2)}% (${r.fast.received}/${r.fast.offered})`);
    console.log(`   slow clients: delivered ${(100 * r.slow.deliveredRatio).toFixed(2)}%, not delivered by the end, by priority ${JSON.stringify(r.slow.droppedBy)}, p99 ${q(r.slow.p99)} ms`);
    if (r.drops) console.log(`   shed by the gateway's policy, by priority: ${JSON.stringify(r.drops)}; dropped when a client's socket closed: ${r.deadLetters}`);
    console.log(`   frames sent ${r.frames} (${r.messagesPerFrame.toFixed(2)} messages per frame${r.shared !== null ? `, ${r.shared} of them reusing the bytes built for another subscriber` : ''}${r.direct !== null ? `, ${r.direct} written straight from the topic's shared batch` : ''}); client processes' CPU ${r.clientCpu.map((c) => `${(100 * c).toFixed(0)}%`).join(', ')} of a core`);
    console.log(`   server event loop delay p50 ${r.loop.p50.toFixed(1)} ms, p99 ${r.loop.p99.toFixed(1)} ms, max ${r.loop.max.toFixed(0)} ms; client processes' p50 / p99 ${r.clientLoop.map((l) => `${l.p50.toFixed(1)} / ${l.p99.toFixed(1)}`).join(', ')} ms`);
    console.log(`   server JS heap used MiB over time ${r.heap.filter((_, i) => i % 5 === 0).join(' ')}${r.mode === 'gateway' ? `; wasm memory ${r.wasm.at(-1)} MiB` : ''}`);
    if (cfg.duration >= 120) {
      const m = memorySummary(r);
      console.log(`   memory every 10 s, RSS MiB: ${m.rss10.join(' ')}`);
      console.log(`   memory every 10 s, JS heap used MiB: ${m.heap10.join(' ')}`);
      console.log(`   memory every 10 s, JS heap committed MiB: ${m.heapTotal10.join(' ')}`);
      console.log(`   memory every 10 s, external (Buffers, wasm) MiB: ${m.external10.join(' ')}`);
      console.log(`   RSS start / max / end ${m.start} / ${m.max} / ${m.end} MiB; slope after the first minute ${m.slope.toFixed(2)} MiB/min (least squares), JS heap ${m.heapSlope.toFixed(2)} MiB/min, wasm ${m.wasmStart} -> ${m.wasmEnd} MiB`);
    }
    console.log(`   server: RSS MiB over time ${r.rss.filter((_, i) => i % 5 === 0).join(' ')} (max ${Math.max(...r.rss)}), CPU ${(100 * r.cpu).toFixed(0)}% of a core; closed clients: fast ${JSON.stringify(r.fast.closeCodes)}, slow ${JSON.stringify(r.slow.closeCodes)}; never subscribed (left out): ${r.fast.excluded + r.slow.excluded}`);
  }
  if (results.length > 1) {
    console.log('\n| | ' + results.map((r) => r.mode).join(' | ') + ' |');
    console.log('|---|' + results.map(() => '---:').join('|') + '|');
    const row = (name, f) => console.log(`| ${name} | ${results.map(f).join(' | ')} |`);
    const q = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    row('fast p50 latency (ms)', (r) => q(r.fast.p50));
    row('fast p99 latency (ms)', (r) => q(r.fast.p99));
    row('fast delivered', (r) => `${(100 * r.fast.deliveredRatio).toFixed(2)}%`);
    row('slow delivered', (r) => `${(100 * r.slow.deliveredRatio).toFixed(2)}%`);
    for (const n of PRIO_NAMES) row(`slow clients, not delivered by the end: ${n}`, (r) => r.slow.droppedBy[n]);
    for (const n of PRIO_NAMES) row(`shed by the gateway: ${n}`, (r) => (r.drops ? r.drops[n] : '-'));
    row('server RSS start / max / end (MiB)', (r) => `${r.rss[0]} / ${Math.max(...r.rss)} / ${r.rss.at(-1)}`);
    row('server CPU (% of a core)', (r) => (100 * r.cpu).toFixed(0));
    row('server event loop delay p50 / p99 (ms)', (r) => `${r.loop.p50.toFixed(1)} / ${r.loop.p99.toFixed(1)}`);
    row('frames sent (messages per frame)', (r) => `${r.frames} (${r.messagesPerFrame.toFixed(1)})`);
    row('client processes CPU (% of a core each)', (r) => r.clientCpu.map((c) => (100 * c).toFixed(0)).join(', '));
    row('client processes event loop delay p99 (ms)', (r) => r.clientLoop.map((l) => l.p99.toFixed(1)).join(', '));
  }
  if (args.json) writeFileSync(args.json, JSON.stringify({ config: cfg, results }, null, 2));
}

if (args.role === 'server') await server();
else if (args.role === 'clients') await clients();
else await main();
