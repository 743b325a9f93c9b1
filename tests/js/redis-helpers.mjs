// A real redis-server for tests and benchmarks (Debian's package; scripts/setup.sh installs it):
// started on a free loopback port in a temporary folder with AOF on, stopped by the caller.
// Never a mock.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function redisAvailable() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Sends PING over a raw socket; resolves true on +PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Starts redis-server: `--port P --bind 127.0.0.1 --dir TMP --appendonly yes --save ""`.
 * Returns `{ port, url, dir, stop(), restart(), kill() }`. `stop()` shuts it down (AOF flushed) and
 * keeps the folder; `restart()` starts it again on the same port and folder (so what AOF kept
 * comes back); `destroy()` stops it and removes the folder.
 */
export async function startRedis({ port } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nodeflow-redis-'));
  const p = port ?? (await freePort());
  let proc = null;
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const child = proc;
    let exited = false;
    // Never outlive the test process (an error, a timeout, Ctrl-C): kill it on the way out.
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => {
      exited = true;
      process.removeListener('exit', reap);
    });
    await waitFor(async () => {
      if (exited) throw new Error(`redis-server exited at start (port ${p})`);
      return ping(p);
    }, 10_000, `redis-server on port ${p}`);
  };
  const stop = async (signal = 'SIGTERM') => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const child = proc;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  await launch();
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    dir,
    get pid() {
      return proc?.pid;
    },
    stop: () => stop('SIGTERM'),
    restart: launch,
    async destroy() {
      await stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs redis-cli with `args` (bounded in time); resolves with its stdout. */
function redisCli(args, timeout = 20_000) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout }, (err, stdout, stderr) => (err ? reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout)));
  });
}

/**
 * Starts a Redis Cluster of `masters` (default 3) redis-servers on free loopback ports (client
 * and cluster-bus ports both chosen free), each in a temporary folder with AOF on, joins them with
 * `redis-cli --cluster create` and waits until every node reports `cluster_state:ok`.
 * Returns `{ ports, urls, destroy() }`; `destroy()` kills every node and removes the folders,
 * and the nodes are killed on process exit whatever happens.
 */
export async function startRedisCluster({ masters = 3 } = {}) {
  const nodes = [];
  const destroy = async () => {
    await Promise.all(nodes.map(({ proc }) => (proc.exitCode !== null || proc.signalCode !== null ? null : new Promise((r) => {
      proc.once('exit', r);
      proc.kill('SIGKILL');
    }))));
    for (const { dir } of nodes) rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'nodeflow-redis-cluster-'));
      const port = await freePort();
      let bus = await freePort();
      while (bus === port) bus = await freePort();
      const proc = spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes',
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus), '--cluster-node-timeout', '2000',
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
      const reap = () => proc.kill('SIGKILL');
      process.once('exit', reap);
      proc.once('exit', () => process.removeListener('exit', reap));
      nodes.push({ port, dir, proc });
      await waitFor(async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server (cluster node) exited at start (port ${port})`);
        return ping(port);
      }, 10_000, `redis-server on port ${port}`);
    }
    const addrs = nodes.map(({ port }) => `127.0.0.1:${port}`);
    await redisCli(['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes']);
    await waitFor(async () => {
      for (const { port } of nodes) if (!(await redisCli(['-p', String(port), 'cluster', 'info'])).includes('cluster_state:ok')) return false;
      return true;
    }, 20_000, 'cluster_state:ok on every node');
  } catch (e) {
    await destroy();
    throw e;
  }
  return { ports: nodes.map((n) => n.port), urls: nodes.map((n) => `redis://127.0.0.1:${n.port}`), destroy };
}
