// The terminal dashboard `nodeflow-stream` as a child process with piped (non-TTY) output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin/nodeflow-stream.mjs');
const run = (args, timeout = 30000) => spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', timeout });
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[/;

test('the bin is executable with a node shebang', () => {
  assert.ok(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n'));
  assert.ok(statSync(bin).mode & 0o111, 'executable');
});

test('demo --duration 2 with piped output: plain periodic lines, alerts, a summary, exit 0', () => {
  const r = run(['demo', '--duration', '2']);
  assert.equal(r.signal, null, 'exited by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, ANSI, 'no ANSI codes when stdout is not a terminal');
  const lines = r.stdout.split('\n');
  const periodic = lines.filter((l) => /msg\/s/.test(l) && /p95/.test(l) && /p99/.test(l));
  assert.ok(periodic.length >= 4, `one line per connection per period:\n${r.stdout}`);
  for (const pattern of ['sequential', 'random', 'sine-wave', 'step']) {
    assert.ok(periodic.some((l) => l.includes(pattern)), `a line for ${pattern}`);
  }
  assert.ok(lines.some((l) => /ALERT/.test(l)), `the slow connection raises alerts:\n${r.stdout}`);
  assert.match(r.stdout, /Summary/);
  assert.match(r.stdout, /alerts: \d+ fired/);
  const slow = lines.find((l) => l.startsWith('random (slow)'));
  assert.ok(slow, 'summary row of the slow connection');
  const [, , , dropped] = slow.replace('random (slow)', 'random').trim().split(/\s+/);
  assert.ok(Number(dropped) > 0, `the slow reader caused drops: ${slow}`);
});

test('demo stops on Ctrl-C (SIGINT) with a summary and exit 0', async () => {
  const child = spawn(process.execPath, [bin, 'demo', '--rate', '200'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (/p95/.test(out)) resolve(); // running: the first periodic lines are out
    });
  });
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
  const { code, signal } = await exited;
  clearTimeout(timer);
  assert.equal(signal, null, 'exited by itself after Ctrl-C');
  assert.equal(code, 0, err);
  assert.match(out, /Summary/);
});

test('perf --scenario "Low Volume Baseline" --duration-scale 0.05 --json: report and results', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-cli-'));
  try {
    const file = join(dir, 'results.json');
    const r = run(['perf', '--scenario', 'Low Volume Baseline', '--duration-scale', '0.05', '--json', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^# Performance Test Report/m);
    assert.match(r.stdout, /## Low Volume Baseline/);
    assert.match(r.stdout, /\*\*Total Messages\*\*: 15\b/);
    assert.doesNotMatch(r.stdout, ANSI);
    assert.match(r.stderr, /Low Volume Baseline 100%/, 'plain progress lines on a non-TTY stderr');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(doc.results.length, 1);
    const [res] = doc.results;
    assert.equal(res.config.name, 'Low Volume Baseline');
    assert.equal(res.config.duration, 1500);
    assert.equal(res.totalMessages, 15, '10 msg/s for 1.5 s');
    assert.equal(res.droppedMessages, 0);
    for (const k of ['startTime', 'endTime', 'duration', 'avgMessagesPerSecond', 'avgLatency', 'minLatency', 'maxLatency', 'p95Latency', 'p99Latency', 'errorRate', 'backpressureEvents', 'memoryUsage']) {
      assert.equal(typeof res[k], 'number', k);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scenario names are case-insensitive; --duration-scale scales burst intervals too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-cli-'));
  try {
    const file = join(dir, 'r.json');
    const r = run(['perf', '--scenario=burst traffic test', '--duration-scale=0.02', `--json=${file}`]);
    assert.equal(r.status, 0, r.stderr);
    const [res] = JSON.parse(readFileSync(file, 'utf8')).results;
    assert.equal(res.config.name, 'Burst Traffic Test');
    assert.equal(res.config.duration, 1800);
    assert.deepEqual(res.config.burstMode, { enabled: true, burstSize: 100, burstInterval: 100 });
    // 3 connections × (50 msg/s × 1.8 s + 17 bursts of 100).
    assert.equal(res.totalMessages + res.droppedMessages, 3 * (90 + 17 * 100));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--help prints usage and exits 0', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage: nodeflow-stream/);
  assert.match(r.stdout, /demo/);
  assert.match(r.stdout, /perf/);
});

test('usage errors: message on stderr, exit code 2', () => {
  for (const args of [['bogus'], [], ['demo', '--bogus'], ['demo', '--rate'], ['demo', '--rate', 'fast'], ['demo', '--duration', '-1'], ['perf', '--scenario', 'Nope'], ['perf', '--all', '--scenario', 'Low Volume Baseline'], ['perf', 'extra']]) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /nodeflow-stream: /, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});
