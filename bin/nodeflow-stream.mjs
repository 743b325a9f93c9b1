#!/usr/bin/env node
// nodeflow-stream: a terminal dashboard for @nodeflow/stream-engine.
//   demo  streams four synthetic sources through engine connections and shows them live
//   perf  runs the performance suite and prints its report
import { writeFile } from 'node:fs/promises';
import {
  StreamEngine,
  DefaultBackpressureHandler,
  PerformanceTestSuite,
  STANDARD_PERFORMANCE_TESTS,
  createDataSource,
  subscribeWidget,
  version,
} from '../dist/node.mjs';

const PROG = 'nodeflow-stream';
const USAGE = `Usage: ${PROG} <command> [options]

Commands:
  demo    Stream four data patterns (sequential, random, sine-wave, step) through engine
          connections and show a live dashboard: per connection msg/s, p95/p99 latency, buffer,
          drops, backpressure, and alerts as they fire. One connection has a slow reader, so
          backpressure, priority drops and alerts show. Stops on Ctrl-C or after --duration.
            --duration SECONDS   stop after this many seconds (default: run until Ctrl-C)
            --rate N             messages per second per source (default 1000)
  perf    Run the performance suite and print its Markdown report.
            --scenario NAME      a standard scenario, case-insensitive (default 'Low Volume Baseline')
            --all                all five standard scenarios
            --duration-scale X   multiply scenario durations (and burst intervals) by X, e.g. 0.05
            --json FILE          also write the results as JSON to FILE
  worker  Run one consumer-group member of the Redis Streams scale-out (see README, "Scale-out on
          Redis Streams"): it owns a share of the partitions, aggregates their messages in
          event-time windows and XADDs the results, idempotently, to an output stream.
            --redis URL          redis://host:port (required, unless --cluster)
            --cluster URL,URL    Redis Cluster nodes (some; the rest are discovered); needs
                                 an --output with {p}, e.g. 'nodeflow:out:{p}'
            --group G            consumer group (default nodeflow)
            --partitions P       number of input partitions (default 8)
            --window D           window size, e.g. 1s, 500ms (default 1s); --slide D for sliding
            --lateness D         allowed lateness (default 0)
            --prefix K           input streams K:{0}..K:{P-1} (default nodeflow:in)
            --output K           output stream (default nodeflow:out; {p} = one per partition)
            --name N             consumer name (default: host-pid based)
            --lease D            partition lease (default 5s); --idle-flush D (default: window)
            --lineage            results list the ids of the inputs they cover
            --duration SECONDS   stop after this long (default: until SIGINT/SIGTERM)

Options:
  -h, --help      show this help
  -v, --version   show the version

Scenarios: ${STANDARD_PERFORMANCE_TESTS.map((t) => t.name).join(', ')}.
When stdout is not a terminal, the demo prints plain periodic lines instead of redrawing.
`;

class UsageError extends Error {}

// ---- argument parsing ------------------------------------------------------------------------

const FLAGS = {
  demo: { '--duration': 'value', '--rate': 'value' },
  perf: { '--scenario': 'value', '--all': 'bool', '--duration-scale': 'value', '--json': 'value' },
  worker: {
    '--redis': 'value', '--cluster': 'value', '--group': 'value', '--partitions': 'value', '--window': 'value', '--slide': 'value',
    '--lateness': 'value', '--prefix': 'value', '--output': 'value', '--name': 'value', '--lease': 'value',
    '--idle-flush': 'value', '--lineage': 'bool', '--delay': 'value', '--duration': 'value',
  },
};

function parseArgs(argv) {
  if (argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') return { command: 'help' };
  if (argv.includes('--version') || argv.includes('-v')) return { command: 'version' };
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('a command is required (demo, perf or worker)');
  const spec = FLAGS[command];
  if (!spec) throw new UsageError(`unknown command '${command}'`);
  const flags = {};
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const kind = spec[name];
    if (!kind) throw new UsageError(arg.startsWith('-') ? `unknown option '${name}' for ${command}` : `unexpected argument '${arg}'`);
    if (kind === 'bool') {
      if (eq > 0) throw new UsageError(`option '${name}' takes no value`);
      flags[name] = true;
    } else if (eq > 0) {
      flags[name] = arg.slice(eq + 1);
    } else {
      if (i + 1 >= rest.length) throw new UsageError(`option '${name}' needs a value`);
      flags[name] = rest[++i];
    }
  }
  return { command, flags };
}

function positiveNumber(flags, name, dflt) {
  const v = flags[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a positive number, got '${v}'`);
  return n;
}

// ---- formatting ----------------------------------------------------------------------------

const useColor = () => process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, s) => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = (s) => paint('1', s);
const dim = (s) => paint('2', s);
const red = (s) => paint('31', s);
const yellow = (s) => paint('33', s);
const green = (s) => paint('32', s);

const pad = (s, n) => (String(s).length >= n ? String(s) : String(s) + ' '.repeat(n - String(s).length));
const lpad = (s, n) => (String(s).length >= n ? String(s) : ' '.repeat(n - String(s).length) + String(s));
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '-');

function bar(fraction, width) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  const full = Math.round(f * width);
  return '#'.repeat(full) + '.'.repeat(width - full);
}

const SPARKS = '▁▂▃▄▅▆▇█';
/** A sparkline of `width` points sampled evenly across `values`, over [lo, hi] (auto when null). */
function sparkline(values, width, range) {
  if (values.length === 0 || width <= 0) return '';
  const n = Math.min(width, values.length);
  const v = [];
  for (let i = 0; i < n; i++) v.push(values[Math.floor(((i + 1) * values.length) / n) - 1]);
  let lo = range ? range[0] : Infinity;
  let hi = range ? range[1] : -Infinity;
  if (!range) {
    for (const x of v) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
  }
  const span = hi - lo || 1;
  return v.map((x) => SPARKS[Math.max(0, Math.min(SPARKS.length - 1, Math.floor(((x - lo) / span) * SPARKS.length)))]).join('');
}

function clock(ts) {
  const d = new Date(ts);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- demo ----------------------------------------------------------------------------------

const PATTERNS = ['sequential', 'random', 'sine-wave', 'step'];
const AMPLITUDE = 100;
/** Value ranges of the trend column (null: the window's own range). */
const RANGES = { sequential: null, random: [0, AMPLITUDE], 'sine-wave': [-AMPLITUDE, AMPLITUDE], step: [0, AMPLITUDE] };
/** Seconds of values each widget keeps (its trend column). */
const TREND_SECONDS = 4;
/** The pattern whose widget reads slowly, at SLOW_SHARE of the source rate. */
const SLOW = 'random';
const SLOW_SHARE = 0.25;

/** Mostly low priority with some normal and high messages: what priority dropping sheds first. */
function mixedPriority() {
  const r = Math.random();
  return r < 0.1 ? 'high' : r < 0.4 ? 'normal' : 'low';
}

async function demo(flags) {
  const duration = positiveNumber(flags, '--duration', Infinity);
  const rate = positiveNumber(flags, '--rate', 1000);
  const tty = !!process.stdout.isTTY;
  // Ctrl-C (or SIGTERM) ends the demo normally, from the start.
  let requestStop;
  const stopRequested = new Promise((resolve) => {
    requestStop = resolve;
  });
  process.once('SIGINT', requestStop);
  process.once('SIGTERM', requestStop);
  const engine = new StreamEngine({ metricsInterval: 500 });
  const started = performance.now();
  const rows = [];
  let stopping = false;

  for (const pattern of PATTERNS) {
    const slow = pattern === SLOW;
    const src = `${pattern}-sensor`;
    const dst = `${pattern}-widget`;
    const config = slow
      ? { bufferSize: 200, maxBatchSize: 20, backpressureHandler: new DefaultBackpressureHandler({ dropThreshold: 0.9, maxWaitTime: 20 }) }
      : {};
    const id = engine.createConnection(src, dst, 'out', 'in', config);
    const conn = engine.getConnection(id);
    const source = createDataSource(pattern, {
      rate,
      sourceNodeId: src,
      targetNodeId: dst,
      messageSize: 64,
      amplitude: AMPLITUDE,
      period: pattern === 'step' ? 1000 : 2000,
      ...(slow ? { priority: mixedPriority } : {}),
    });
    const row = { pattern, id, slow, conn, source, sourceReader: null, widget: null, unsubscribe: null, last: null, rejected: 0 };
    rows.push(row);

    // Source -> connection: a live producer that does not wait for held writes (they are
    // released within maxWaitTime), but never queues more than a bounded amount.
    row.pump = (async () => {
      const reader = source.getReader();
      row.sourceReader = reader;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopping) break;
          const w = conn.writer;
          if (w.desiredSize !== null && w.desiredSize < -1000) await w.ready.catch(() => {});
          w.write(value).catch(() => {
            row.rejected++;
          });
        }
      } catch {
        // cancelled at exit
      }
    })();

    // Connection -> widget, through a slow reader for one of them.
    let readable = conn.readable;
    if (slow) {
      const perMessage = 1000 / (rate * SLOW_SHARE);
      readable = readable.pipeThrough(
        new TransformStream({
          async transform(batch, controller) {
            await sleep(batch.length * perMessage);
            controller.enqueue(batch);
          },
        }),
      );
    }
    row.unsubscribe = subscribeWidget(readable, { bufferSize: Math.min(10000, Math.ceil(rate * TREND_SECONDS)), updateInterval: 100, engine, connectionId: id }, (u) => {
      row.widget = u;
    });
  }

  // Alerts, as they fire.
  const alerts = [];
  let alertCount = 0;
  let resolvedCount = 0;
  const alertFeed = engine.events({ types: ['alert', 'alert-resolved'] }).getReader();
  (async () => {
    try {
      for (;;) {
        const { value, done } = await alertFeed.read();
        if (done) break;
        const a = value.alert;
        const resolved = value.type === 'alert-resolved';
        if (resolved) resolvedCount++;
        else alertCount++;
        const entry = { at: performance.now() - started, ts: value.timestamp, resolved, alert: a };
        alerts.push(entry);
        if (alerts.length > 8) alerts.shift();
        if (!tty && !stopping) console.log(alertLine(entry, false));
      }
    } catch {
      // feed closed
    }
  })();

  const snapshot = () =>
    rows.map((r) => {
      let m = r.final;
      if (!m) {
        try {
          m = engine.getMetrics(r.id);
        } catch {
          m = null;
        }
      }
      return { r, m };
    });

  const stamp = () => `[${lpad(f1((performance.now() - started) / 1000), 6)}s]`;

  function alertLine(e, pretty, width = Infinity) {
    const a = e.alert;
    const what = e.resolved ? 'RESOLVED' : `ALERT ${a.severity.toUpperCase()}`;
    const text = `${pretty ? clock(e.ts) : `[${lpad(f1(e.at / 1000), 6)}s]`} ${what} ${a.type} ${a.connectionId || 'engine'}: ${a.message}`.slice(0, width);
    if (!pretty) return text;
    return e.resolved ? green(text) : a.severity === 'critical' ? red(text) : yellow(text);
  }

  function plainReport() {
    for (const { r, m } of snapshot()) {
      if (!m) continue;
      console.log(
        `${stamp()} ${pad(r.pattern, 10)} ${lpad(f1(m.messagesPerSecond), 8)} msg/s  p95 ${lpad(f1(m.p95Latency), 6)} ms  p99 ${lpad(f1(m.p99Latency), 6)} ms  ` +
          `buffer ${lpad(Math.round(m.bufferUtilization * 100), 3)}%  drops ${m.dropped}  backpressure ${m.backpressure ? 'on' : 'off'}${r.slow ? '  (slow reader)' : ''}`,
      );
    }
  }

  let drawn = false;
  function draw() {
    const width = process.stdout.columns || 120;
    const elapsed = (performance.now() - started) / 1000;
    const lines = [];
    const limit = Number.isFinite(duration) ? ` of ${f1(duration)}s` : '';
    const fit = (text) => text.slice(0, width - 1);
    lines.push(bold(fit(`NodeFlow Stream Engine ${version} - live demo   ${f1(elapsed)}s${limit}   ${rate} msg/s per source   Ctrl-C to stop`)));
    lines.push('');
    lines.push(bold(fit(`${pad('CONNECTION', 20)} ${lpad('MSG/S', 8)} ${lpad('P95 ms', 7)} ${lpad('P99 ms', 7)}  ${pad('BUFFER', 21)} ${lpad('DROPS', 7)}  ${pad('BP', 3)}  TREND (last ${TREND_SECONDS} s)`)));
    let tin = 0;
    let tout = 0;
    let tdrop = 0;
    let tbp = 0;
    for (const { r, m } of snapshot()) {
      if (!m) continue;
      tin += m.messagesIn;
      tout += m.messagesOut;
      tdrop += m.dropped;
      tbp += m.backpressureEvents;
      const values = (r.widget?.data ?? []).map((x) => x.data.value);
      const util = m.bufferUtilization;
      const buf = `[${bar(util, 14)}] ${lpad(Math.round(util * 100), 3)}%`;
      const name = pad(`${r.pattern}${r.slow ? ' (slow reader)' : ''}`, 20);
      let line = `${name} ${lpad(f1(m.messagesPerSecond), 8)} ${lpad(f1(m.p95Latency), 7)} ${lpad(f1(m.p99Latency), 7)}  ${buf} ${lpad(m.dropped, 7)}  ${pad(m.backpressure ? 'ON' : 'off', 3)}  `;
      line += sparkline(values, Math.max(0, Math.min(40, width - line.length - 1)), RANGES[r.pattern]);
      line = line.slice(0, width - 1);
      lines.push(m.backpressure ? yellow(line) : line);
    }
    lines.push(dim(fit(`${rows.length} sources -> ${rows.length} widgets; connection ids like ${rows[0].id}`)));
    lines.push('');
    lines.push(fit(`Totals: in ${tin}  out ${tout}  dropped ${tdrop}  backpressure events ${tbp}  alerts ${alertCount} fired, ${resolvedCount} resolved`));
    lines.push('');
    lines.push(bold('Alerts'));
    if (alerts.length === 0) lines.push(dim('  none yet'));
    for (const e of alerts) lines.push(alertLine(e, true, width - 1));
    let out = drawn ? '\x1b[H' : '\x1b[?25l\x1b[2J\x1b[H';
    out += lines.map((l) => `${l}\x1b[K`).join('\n') + '\n\x1b[J';
    drawn = true;
    process.stdout.write(out);
  }

  if (!tty) {
    console.log(`demo: ${PATTERNS.length} sources at ${rate} msg/s each${Number.isFinite(duration) ? ` for ${duration} s` : ''}; '${SLOW}' has a slow reader (${SLOW_SHARE * 100}% of the rate)`);
  }
  const restoreCursor = () => {
    if (tty && drawn) process.stdout.write('\x1b[?25h');
  };
  process.on('exit', restoreCursor);

  const ui = setInterval(tty ? draw : plainReport, tty ? 250 : 1000);
  let end = null;
  await Promise.race([stopRequested, Number.isFinite(duration) ? new Promise((resolve) => (end = setTimeout(resolve, duration * 1000))) : stopRequested]);
  clearInterval(ui);
  if (end !== null) clearTimeout(end);
  process.removeListener('SIGINT', requestStop);
  process.removeListener('SIGTERM', requestStop);

  // Shut down: final figures, then sources, widgets, the feed and the engine.
  stopping = true;
  const elapsed = (performance.now() - started) / 1000;
  for (const r of rows) {
    try {
      r.final = engine.getMetrics(r.id);
    } catch {
      r.final = null;
    }
  }
  if (tty) {
    draw();
    restoreCursor();
    process.removeListener('exit', restoreCursor);
  }
  for (const r of rows) {
    await r.sourceReader?.cancel().catch(() => {});
    r.unsubscribe();
  }
  await alertFeed.cancel().catch(() => {});
  engine.destroy();
  await Promise.all(rows.map((r) => r.pump));

  console.log('');
  console.log(bold(`Summary (${f1(elapsed)} s, ${rate} msg/s per source)`));
  console.log(`${pad('connection', 34)} ${lpad('in', 9)} ${lpad('out', 9)} ${lpad('dropped', 8)} ${lpad('avg msg/s', 10)} ${lpad('p95 ms', 8)} ${lpad('p99 ms', 8)} ${lpad('bp events', 10)}`);
  for (const r of rows) {
    const m = r.final;
    if (!m) continue;
    console.log(
      `${pad(`${r.pattern}${r.slow ? ' (slow)' : ''}`, 34)} ${lpad(m.messagesIn, 9)} ${lpad(m.messagesOut, 9)} ${lpad(m.dropped, 8)} ${lpad(f1(m.messagesOut / elapsed), 10)} ` +
        `${lpad(f1(m.p95Latency), 8)} ${lpad(f1(m.p99Latency), 8)} ${lpad(m.backpressureEvents, 10)}`,
    );
  }
  console.log(`alerts: ${alertCount} fired, ${resolvedCount} resolved`);
  return 0;
}

// ---- perf ----------------------------------------------------------------------------------

async function perf(flags) {
  const scale = positiveNumber(flags, '--duration-scale', 1);
  if (flags['--all'] && flags['--scenario'] !== undefined) throw new UsageError('use either --scenario or --all');
  let configs;
  if (flags['--all']) {
    configs = STANDARD_PERFORMANCE_TESTS;
  } else {
    const want = (flags['--scenario'] ?? 'Low Volume Baseline').trim().toLowerCase();
    const found = STANDARD_PERFORMANCE_TESTS.find((t) => t.name.toLowerCase() === want);
    if (!found) {
      throw new UsageError(`unknown scenario '${flags['--scenario']}'; known: ${STANDARD_PERFORMANCE_TESTS.map((t) => `'${t.name}'`).join(', ')}`);
    }
    configs = [found];
  }
  configs = configs.map((c) => ({
    ...c,
    duration: Math.max(1, Math.round(c.duration * scale)),
    ...(c.burstMode ? { burstMode: { ...c.burstMode, burstInterval: Math.max(1, Math.round(c.burstMode.burstInterval * scale)) } } : {}),
  }));

  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const ptty = !!process.stderr.isTTY;
  let lastStep = -1;
  let lastName = '';
  const onProgress = (name, f) => {
    if (ptty) {
      process.stderr.write(`\r${pad(name, 26)} [${bar(f, 30)}] ${lpad(Math.round(f * 100), 3)}%\x1b[K`);
      if (f >= 1) process.stderr.write('\n');
    } else {
      const step = Math.floor(f * 4); // plain lines at 0, 25, 50, 75 and 100%
      if (name !== lastName) {
        lastName = name;
        lastStep = -1;
      }
      if (step > lastStep) {
        lastStep = step;
        process.stderr.write(`perf: ${name} ${step * 25}%\n`);
      }
    }
  };

  let code = 0;
  try {
    await suite.runTestSuite(configs, { onProgress, signal: controller.signal });
  } catch (e) {
    if (!controller.signal.aborted) throw e;
    if (ptty) process.stderr.write('\n');
    process.stderr.write(`${PROG}: interrupted; reporting the tests that finished\n`);
    code = 130;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    engine.destroy();
  }
  process.stdout.write(suite.generateReport() + '\n');
  if (flags['--json'] !== undefined) {
    const doc = { tool: PROG, version, generatedAt: new Date().toISOString(), durationScale: scale, results: suite.getResults() };
    await writeFile(flags['--json'], JSON.stringify(doc, null, 2) + '\n');
    process.stderr.write(`${PROG}: results written to ${flags['--json']}\n`);
  }
  return code;
}

// ---- main ----------------------------------------------------------------------------------

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs(argv);
    if (parsed.command === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (parsed.command === 'version') {
      process.stdout.write(`${version}\n`);
      return 0;
    }
    if (parsed.command === 'demo') return await demo(parsed.flags);
    if (parsed.command === 'worker') return await (await import('../redis/cli-worker.mjs')).worker(parsed.flags, UsageError);
    return await perf(parsed.flags);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${PROG}: ${e.message}\nRun '${PROG} --help' for usage.\n`);
      return 2;
    }
    process.stderr.write(`${PROG}: ${e?.stack ?? e}\n`);
    return 1;
  }
}

// A closed pipe (e.g. `| head`) ends the program quietly.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2));
