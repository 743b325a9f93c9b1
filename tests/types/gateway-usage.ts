// Compiles against types/gateway.d.ts and the gateway client declarations (tsc --strict).
import { StreamEngine, connectGateway, type GatewayEvent, type GapEvent } from '@nodeflow/stream-engine';
import { createGateway, MemoryHistory, CLOSE_CODES, type GatewayHistory } from '@nodeflow/stream-engine/gateway';

export async function gatewayUsage(): Promise<number> {
  const history: GatewayHistory = new MemoryHistory({ size: 100 });
  const gw = await createGateway({
    port: 0,
    history,
    topics: ['prices'],
    authorize: (req) => (req.url?.includes('token=ok') ? { subscribe: ['prices'], publish: (t) => t === 'prices' } : false),
    policy: { bufferSize: 500, dropPolicy: 'priority' },
    hardLimit: { stallMs: 30000 },
  });
  const writer = gw.topic('prices').writable.getWriter();
  await writer.write({ id: 'a', timestamp: Date.now(), sourceNodeId: 's', targetNodeId: '*', port: 'out', data: 1 });
  const engine = new StreamEngine();
  const client = connectGateway(gw.url, { topics: ['prices', { topic: 'news', hidden: 'pause', policy: { conflate: true } }], engine });
  await client.ready();
  const batch = await client.readable<number>('prices')!.getReader().read();
  const first: number | undefined = batch.value?.[0].data;
  const feed = engine.events({ types: ['gap', 'gateway'] }).getReader();
  const ev = (await feed.read()).value;
  if (ev?.type === 'gap') {
    const g: GapEvent = ev;
    void g.topic;
  } else if (ev?.type === 'gateway') {
    const g: GatewayEvent = ev;
    void g.action;
  }
  const m = client.metrics().topics.prices.duplicates;
  // Failover: a list of gateways (or a function of the attempt number).
  const spread = connectGateway([gw.url, new URL(gw.url)], { topics: ['prices'] });
  const picked = connectGateway((attempt) => (attempt % 2 === 0 ? gw.url : gw.url), { topics: ['prices'] });
  const where: string = spread.metrics().url + picked.url;
  // @ts-expect-error a URL list holds strings or URLs only
  connectGateway([gw.url, 42]);
  spread.close();
  picked.close();
  void where;
  client.close();
  await gw.close();
  return (first ?? 0) + m + CLOSE_CODES.TOO_SLOW + gw.metrics().clients;
}
