// Shared set-up for the browser tests: Debian's Chromium through playwright-core (never a
// downloaded browser), the repository's static server on a free port, and console capture.
import { existsSync } from 'node:fs';
import { startServer } from '../../scripts/serve.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Why the browser tests cannot run here, or false. Pass it as `skip` to describe()/test(). */
export function skipReason() {
  if (!existsSync(CHROMIUM)) {
    return `Chromium not found at ${CHROMIUM}: run \`bash scripts/setup.sh --browser\` (or set CHROMIUM_PATH)`;
  }
  if (!existsSync(new URL('../../dist/web.mjs', import.meta.url)) || !existsSync(new URL('../../pkg/web/stream_engine_bg.wasm', import.meta.url))) {
    return 'the web build is missing: run `bash scripts/build.sh` first';
  }
  return false;
}

/** Launches Chromium and starts the static server (`serverOptions` go to startServer). `close()` stops both. */
export async function openBrowser(serverOptions = {}) {
  const { chromium } = await import('playwright-core');
  const server = await startServer({ ...serverOptions, port: 0 });
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  } catch (e) {
    await server.close();
    throw e;
  }
  return {
    browser,
    server,
    url: server.url,
    async close() {
      await browser.close().catch(() => {});
      await server.close();
    },
  };
}

/** Collects console errors and warnings and uncaught page errors into an array of strings. */
export function captureProblems(page) {
  const problems = [];
  page.on('console', (msg) => {
    const type = msg.type();
    if (type === 'error' || type === 'warning') {
      const loc = msg.location();
      problems.push(`console.${type}: ${msg.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.stack || err.message}`));
  page.on('requestfailed', (req) => {
    // Downloads of blob: URLs are reported as aborted requests; they are not failures.
    if (!req.url().startsWith('blob:')) problems.push(`requestfailed: ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  return problems;
}
