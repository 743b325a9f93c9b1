// The demo page's worker mode (?engine=worker): the engine and the four sources run in a
// dedicated Web Worker (www/engine-worker.js); this page reads each connection's batches
// frame-aligned and the metrics and event feed through connectEngine(). app.js calls in here at
// the few points where the two modes differ.
import { connectEngine } from '/dist/web.mjs';

export const WORKER_MODE = new URLSearchParams(location.search).get('engine') === 'worker';

/** Settings carried across the reload that (re)starts the worker: ?engine=worker&handler=… */
export function settingsFromUrl(settings) {
  const q = new URLSearchParams(location.search);
  if (q.has('handler')) settings.handler = q.get('handler');
  if (q.has('dropPolicy')) settings.dropPolicy = q.get('dropPolicy');
  if (q.has('rate')) settings.rate = Number(q.get('rate')) || settings.rate;
  if (q.has('mix')) settings.mix = q.get('mix');
}

/** Reloads the page in (or out of) worker mode, keeping the current settings. */
export function reloadWith(settings, worker) {
  const q = new URLSearchParams();
  if (worker) q.set('engine', 'worker');
  q.set('handler', settings.handler);
  if (settings.dropPolicy) q.set('dropPolicy', settings.dropPolicy);
  q.set('rate', String(settings.rate));
  q.set('mix', settings.mix);
  location.search = q.toString();
}

/**
 * Starts the worker with the page's streams and settings; resolves to an engine-like object
 * with what app.js uses: config, events(), and per stream readable/pause/resume; plus setRate,
 * setMix and the RemoteEngine.
 */
export async function startWorkerEngine({ streams, settings, mixes, bufferSize, maxBatch, metricsInterval, thresholds }) {
  const worker = new Worker('/www/engine-worker.js', { type: 'module' });
  const ready = new Promise((resolve, reject) => {
    worker.addEventListener('message', (e) => e.data?.ready && resolve(e.data.ids));
    worker.addEventListener('error', (e) => reject(new Error(`engine worker: ${e.message}`)));
  });
  worker.postMessage({
    setup: {
      connections: streams.map((s) => ({ source: s.source, target: s.target, pattern: s.pattern, period: s.period })),
      rate: settings.rate,
      producer: 'batch',
      handler: settings.handler,
      dropPolicy: settings.dropPolicy || undefined,
      bufferSize,
      maxBatchSize: maxBatch,
      batchTimeout: 16,
      metricsInterval,
      thresholds,
      mix: mixes[settings.mix],
    },
  });
  await ready;
  const remote = await connectEngine(worker);
  worker.postMessage({ control: 'start' });
  addEventListener('pagehide', () => worker.terminate());
  return {
    remote,
    worker,
    config: { metricsInterval },
    events: (options) => remote.events(options),
    /** A connection-like object: the frame-aligned readable (moved here) and pause/resume. */
    async connection(id) {
      return {
        id,
        readable: await remote.readable(id, { frames: true }),
        pause: () => worker.postMessage({ control: 'pause', id }),
        resume: () => worker.postMessage({ control: 'resume', id }),
      };
    },
    setRate: (rate) => worker.postMessage({ control: 'rate', rate }),
    setMix: (mix) => worker.postMessage({ control: 'mix', mix }),
  };
}
