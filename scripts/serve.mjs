// A tiny static server for the demo page: `/` is www/index.html; /www, /dist, /pkg and /types are
// served from the repository (so the page imports /dist/web.mjs and /pkg/web/* natively), anything
// else is 404 (403 for a path that tries to leave those folders). No dependencies.
//
//   node scripts/serve.mjs            serves on http://127.0.0.1:8080 (PORT overrides)
//   import { startServer } from './scripts/serve.mjs'
//   const s = await startServer({ port: 0 }); ... s.url ... await s.close();
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

/** Top-level folders of the repository the server exposes. */
export const PUBLIC_DIRS = new Set(['www', 'dist', 'pkg', 'types']);

/**
 * Maps a URL path to `{ file }` under `root`, or `{ status }`: 403 for a path that would leave
 * `root` (traversal), 404 for one outside the public folders.
 */
export function resolvePath(root, urlPath) {
  let p;
  try {
    p = decodeURIComponent(urlPath);
  } catch {
    return { status: 400 };
  }
  if (p.includes('\0')) return { status: 400 };
  if (p === '/' || p === '') p = '/www/index.html';
  else if (p.endsWith('/')) p += 'index.html';
  // Path traversal: anything that resolves outside the root is refused.
  const full = resolve(join(root, p));
  if (!full.startsWith(root + sep)) return { status: 403 };
  const parts = full.slice(root.length + 1).split(sep);
  if (parts.some((seg) => seg.startsWith('.'))) return { status: 403 }; // .git and other dot-files
  // Only the page and the built package are public.
  if (!PUBLIC_DIRS.has(parts[0])) return { status: 404 };
  return { file: full };
}

function send(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * With `wasmCore` (a directory, e.g. wasm-pack's `pkg/`), `/pkg/web/<file>` is served from
 * `<wasmCore>/<file>`: the page then runs on that build of the WebAssembly core.
 */
function resolveCore(wasmCore, urlPath) {
  if (wasmCore === null || !urlPath.startsWith('/pkg/web/')) return null;
  const name = urlPath.slice('/pkg/web/'.length);
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) return { status: 404 };
  return { file: join(wasmCore, name) };
}

function handler(root, log, wasmCore = null) {
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    const url = new URL(req.url, 'http://localhost');
    const { file, status } = resolveCore(wasmCore, url.pathname) ?? resolvePath(root, url.pathname);
    if (status !== undefined) {
      log?.(`${status} ${req.url}`);
      return send(res, status, `${status === 403 ? 'forbidden' : status === 400 ? 'bad request' : 'not found'}\n`);
    }
    let st = null;
    try {
      st = await stat(file);
    } catch {
      st = null;
    }
    if (st === null || !st.isFile()) {
      log?.(`404 ${req.url}`);
      return send(res, 404, 'not found\n');
    }
    const type = MIME[extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, {
      'content-type': type,
      'content-length': st.size,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file)
      .on('error', () => res.destroy())
      .pipe(res);
  };
}

/**
 * Starts the server. `port: 0` picks a free port. `wasmCore`: serve `/pkg/web/*` from that
 * directory (relative to `root`), e.g. wasm-pack's output. Resolves to
 * `{ server, port, host, url, close() }` once listening.
 */
export function startServer({ port = 8080, host = '127.0.0.1', root = ROOT, log = null, wasmCore = null } = {}) {
  const server = createServer(handler(resolve(root), log, wasmCore === null ? null : resolve(root, wasmCore)));
  return new Promise((resolveP, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const actual = server.address().port;
      const url = `http://${host}:${actual}/`;
      resolveP({
        server,
        port: actual,
        host,
        url,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = process.env.PORT === undefined || process.env.PORT === '' ? 8080 : Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be an integer in 0..65535, got ${JSON.stringify(process.env.PORT)}`);
    process.exit(2);
  }
  const host = process.env.HOST || '127.0.0.1';
  try {
    // WASM_CORE_DIR=pkg: the page's WebAssembly core comes from `wasm-pack build --target web`.
    const s = await startServer({ port, host, wasmCore: process.env.WASM_CORE_DIR || null });
    // The demo's local gateway, on the same server (ws://host:port/gateway).
    const { startDemoGateway } = await import('./demo-gateway.mjs');
    const demoGateway = await startDemoGateway({ server: s.server });
    console.log(`nodeflow stream-engine demo: ${s.url}`);
    console.log(`local gateway:               ${s.url.replace(/^http/, 'ws')}gateway`);
    console.log(`browser benchmark page:      ${s.url}www/bench.html`);
    console.log('press Ctrl+C to stop');
    const stop = () => demoGateway.close().then(() => s.close()).then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (e) {
    console.error(e.code === 'EADDRINUSE' ? `port ${port} is in use: set PORT to another one` : e.message);
    process.exit(1);
  }
}
