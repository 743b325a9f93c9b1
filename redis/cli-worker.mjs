// `nodeflow-stream worker`: runs one worker until SIGINT/SIGTERM (or --duration), printing a
// status line every few seconds to stderr.
import { hostname } from 'node:os';
import { startWorker, parseDuration } from './worker.mjs';

export async function worker(flags, UsageError) {
  const url = flags['--redis'];
  const nodes = flags['--cluster'] === undefined ? undefined : String(flags['--cluster']).split(',').filter((u) => u !== '');
  if (!url && !nodes) throw new UsageError('worker needs --redis URL (or --cluster URL,URL)');
  if (url && nodes) throw new UsageError('worker takes --redis or --cluster, not both');
  for (const u of url ? [url] : nodes) if (!/^rediss?:\/\//.test(u)) throw new UsageError(`${url ? '--redis' : '--cluster'} must be redis:// URLs, got '${u}'`);
  if (nodes && !String(flags['--output'] ?? '').includes('{p}')) throw new UsageError("--cluster needs an --output with {p}, e.g. --output 'nodeflow:out:{p}'");
  const dur = (name, dflt) => {
    if (flags[name] === undefined) return dflt;
    try {
      return parseDuration(flags[name], name);
    } catch (e) {
      throw new UsageError(e.message);
    }
  };
  const partitions = Number(flags['--partitions'] ?? 8);
  if (!Number.isInteger(partitions) || partitions < 1) throw new UsageError(`--partitions must be a positive integer, got '${flags['--partitions']}'`);
  const w = await startWorker({
    ...(nodes ? { cluster: { rootNodes: nodes } } : { url }),
    group: flags['--group'] ?? 'nodeflow',
    partitions,
    window: dur('--window', 1000),
    slide: dur('--slide', undefined),
    allowedLateness: flags['--lateness'] === undefined ? 0 : dur('--lateness', 0),
    prefix: flags['--prefix'],
    output: flags['--output'],
    name: flags['--name'] ?? `${hostname()}-${process.pid}`,
    leaseMs: dur('--lease', 5000),
    idleFlush: dur('--idle-flush', undefined),
    lineage: flags['--lineage'] === true,
    delay: dur('--delay', 0),
    log: (line) => process.stderr.write(`[worker] ${line}\n`),
  });
  process.stderr.write(`[worker] ${w.name} started (group ${flags['--group'] ?? 'nodeflow'}, ${partitions} partitions)\n`);
  const report = () =>
    process.stderr.write(`[worker] partitions ${w.owned().join(',') || '-'} read ${w.consumer.stats.read} acked ${w.stats.acked} results ${w.stats.results} late ${w.stats.late} held ${w.held()} errors ${w.stats.errors}\n`);
  const timer = setInterval(report, 5000);
  let end;
  const finished = new Promise((r) => (end = r));
  process.once('SIGINT', end);
  process.once('SIGTERM', end);
  const duration = flags['--duration'] === undefined ? Infinity : Number(flags['--duration']) * 1000;
  if (Number.isFinite(duration)) setTimeout(end, duration).unref();
  await finished;
  clearInterval(timer);
  report();
  await w.stop();
  return 0;
}
