#!/usr/bin/env node
// Browser benchmark: headless Chromium loads www/bench.html, which drives 10 connections at
// 10,000 msg/s each into 10 chart widgets, and reports the frame rate, long tasks and throughput.
// Prints a table and writes bench/results/browser.json.
//
//   node bench/browser.mjs [--duration 10] [--modes stream,sourcebatch,batch] [--connections 10] [--rate 10000]
//                          [--handler default] [--profile] [--strict]
//
//   --modes    stream: sources → batcher → connection (what the demo does)
//              sourcebatch: createDataSource({ batch: true }).pipeTo(connection.writable)
//              batch:  arrays written straight to the connection (engine + widgets only)
//              pipe:   createDataSource().pipeTo(connection.writable), one message per chunk
//              worker: engine + per-message producers (engine.route per message) in a Web Worker,
//                      widgets on this page reading remote.readable(id, { frames: true })
//              worker-post: worker, forcing one postMessage per batch (the Safari fallback)
//   --producer worker modes: route (default) | write | batch
//   --worker-buffer  worker modes: bufferSize per connection (default 250: bounds the page's
//              work per frame, since a frame-aligned chunk is at most what the connection holds)
//   --profile  also records a CPU profile and a trace per mode and prints where the time goes
//   --strict   exit 1 if a target is missed (>= 55 fps, no task over 50 ms)
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { startServer } from '../scripts/serve.mjs';

const TARGET_FPS = 55;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '10' },
    modes: { type: 'string', default: 'stream,sourcebatch,batch' },
    connections: { type: 'string', default: '10' },
    rate: { type: 'string', default: '10000' },
    handler: { type: 'string', default: 'default' },
    producer: { type: 'string', default: 'route' },
    'worker-buffer': { type: 'string', default: '250' },
    profile: { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
  },
});
const duration = Number(opts.duration);
if (!(duration > 0)) throw new RangeError(`--duration must be > 0 seconds, got ${opts.duration}`);
const modes = opts.modes.split(',').map((s) => s.trim()).filter(Boolean);

if (!existsSync(CHROMIUM)) {
  console.error(`Chromium not found at ${CHROMIUM}: run \`bash scripts/setup.sh --browser\` (or set CHROMIUM_PATH).`);
  process.exit(2);
}

const { chromium } = await import('playwright-core');
const server = await startServer({ port: 0 });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
const results = [];

/** Self time per function from a CDP CPU profile, top `n`. */
function topFunctions(profile, n = 15) {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'}${f.url ? ` ${f.url.split('/').pop()}:${f.lineNumber + 1}` : ''}`;
    self.set(name, (self.get(name) ?? 0) + dt);
  }
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, us]) => ({ name, percent: +((100 * us) / total).toFixed(1) }));
}

/** Main-thread time by activity from a Chromium trace. */
function traceBreakdown(events, seconds) {
  const busy = new Map();
  for (const e of events) if (e.name === 'RunTask' && e.ph === 'X') busy.set(e.tid, (busy.get(e.tid) ?? 0) + e.dur);
  const tid = [...busy.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  const pick = {
    'busy (all tasks)': ['RunTask'],
    'timers (source ticks, batch timeouts) + their microtasks': ['TimerFire'],
    'message-channel tasks (batcher yields) + their microtasks': ['MessagePort::Accept'],
    'animation frames (widget updates, chart drawing)': ['FireAnimationFrame'],
    'style + layout': ['UpdateLayoutTree', 'Layout'],
    'paint + commit (whole lifecycle update)': ['WebFrameWidgetImpl::UpdateLifecycle'],
    'garbage collection': ['MinorGC', 'MajorGC', 'V8.GC_SCAVENGER', 'V8.GC_MARK_COMPACTOR'],
  };
  const out = {};
  for (const [label, names] of Object.entries(pick)) {
    let us = 0;
    for (const e of events) if (e.tid === tid && e.ph === 'X' && names.includes(e.name)) us += e.dur ?? 0;
    out[label] = `${((us / 1000 / (seconds * 1000)) * 100).toFixed(0)}% of the main thread`;
  }
  return out;
}

for (const mode of modes) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  const url = `${server.url}www/bench.html?duration=${duration}&connections=${opts.connections}&rate=${opts.rate}&mode=${mode}&handler=${opts.handler}&producer=${opts.producer}&workerBuffer=${opts['worker-buffer']}`;
  process.stderr.write(`[bench] ${mode}: ${url}\n`);
  let result;
  try {
    await page.goto(url);
    await page.waitForFunction(() => globalThis.benchReady || globalThis.benchError, null, { timeout: 15000 });
    await page.waitForFunction(() => globalThis.benchResult || globalThis.benchError, null, { timeout: (duration + 30) * 1000, polling: 500 });
    const err = await page.evaluate(() => globalThis.benchError);
    if (err) throw new Error(err);
    result = await page.evaluate(() => globalThis.benchResult);
  } catch (e) {
    result = { config: { mode }, error: `page unresponsive or failed: ${String(e.message).split('\n')[0]}` };
  }
  await page.close({ runBeforeUnload: false }).catch(() => {});
  // Profiling slows the page down: it gets a run of its own, after the measured one.
  let profile = null;
  if (opts.profile && !result.error) {
    const p2 = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    try {
      await p2.goto(url.replace(/duration=[^&]*/, `duration=${duration + 10}`));
      await p2.waitForFunction(() => globalThis.benchReady, null, { timeout: 15000 });
      await p2.waitForTimeout(1500);
      const cdp = await p2.context().newCDPSession(p2);
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
      await cdp.send('Profiler.start');
      await browser.startTracing(p2, { categories: ['toplevel', 'blink', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8'] });
      const t0 = Date.now();
      await p2.waitForTimeout(3000);
      const trace = JSON.parse((await browser.stopTracing()).toString());
      const { profile: cpu } = await cdp.send('Profiler.stop');
      profile = { topSelfTime: topFunctions(cpu), mainThread: traceBreakdown(trace.traceEvents ?? trace, (Date.now() - t0) / 1000) };
    } catch (e) {
      profile = { error: String(e.message).split('\n')[0] };
    }
    await p2.close({ runBeforeUnload: false }).catch(() => {});
  }
  if (profile) result.profile = profile;
  result.consoleProblems = problems;
  results.push(result);
}

let chromiumVersion = '';
try {
  chromiumVersion = browser.version();
} catch {
  chromiumVersion = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
}
await browser.close();
await server.close();

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const k = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)}k` : '—');
const rows = results.map((r) =>
  r.error
    ? { mode: r.config.mode, fps: 'n/a', 'frame p95 ms': '', 'long tasks >50ms': '', 'longest task ms': '', 'offered msg/s': '', 'delivered msg/s': '', dropped: '', 'delivered+dropped %': '', 'p95 latency ms': '', pass: `FAIL (${r.error})` }
    : {
        mode: r.config.transferMode ? `${r.config.mode} (${r.config.transferMode})` : r.config.mode,
        fps: f1(r.fps),
        'frame p95 ms': f1(r.frameIntervalMs.p95),
        'long tasks >50ms': r.longTasks.over50ms,
        'longest task ms': f1(r.longTasks.longestMs),
        'offered msg/s': k(r.messages.offeredPerSecond),
        'delivered msg/s': k(r.messages.deliveredPerSecond),
        dropped: r.messages.dropped,
        'delivered+dropped %': r.messages.deliveredOrDroppedShare === undefined ? '' : f1(100 * r.messages.deliveredOrDroppedShare),
        'p95 latency ms': f1(r.messages.p95LatencyMs),
        pass: r.fps >= TARGET_FPS && r.longTasks.over50ms === 0 ? 'yes' : 'no',
      },
);
console.log(`\nBrowser benchmark: ${opts.connections} connections × ${Number(opts.rate).toLocaleString('en-US')} msg/s → ${opts.connections} chart widgets, ${duration} s, handler ${opts.handler}`);
console.log(`${chromiumVersion} · ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}) · targets: ≥ ${TARGET_FPS} fps, no task over 50 ms`);
console.table(rows);
for (const r of results) {
  if (!r.profile) continue;
  console.log(`\nwhere the time goes (${r.config.mode}):`);
  for (const [label, v] of Object.entries(r.profile.mainThread)) console.log(`  ${label}: ${v}`);
  console.log('  top self time:');
  for (const f of r.profile.topSelfTime) console.log(`    ${String(f.percent).padStart(5)}%  ${f.name}`);
}
for (const r of results) if (r.consoleProblems?.length) console.log(`\nconsole problems (${r.config.mode}):\n  ${r.consoleProblems.join('\n  ')}`);

const allPass = results.every((r) => !r.error && r.fps >= TARGET_FPS && r.longTasks.over50ms === 0);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL('./results/browser.json', import.meta.url);
writeFileSync(
  file,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      chromium: chromiumVersion,
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1), platform: `${os.platform()} ${os.release()}` },
      targets: { fps: TARGET_FPS, longTasksOver50ms: 0 },
      allTargetsMet: allPass,
      results,
    },
    null,
    2,
  ) + '\n',
);
console.log(`\nwrote ${file.pathname}${allPass ? '' : ' (targets missed)'}`);
if (opts.strict && !allPass) process.exit(1);
