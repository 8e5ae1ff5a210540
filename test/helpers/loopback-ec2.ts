import { createServer, type Server } from 'node:http';
import { parseCloudConfig } from '../../src/scenario/cloud.js';
import { Ec2Model } from '../../src/providers/emulated/ec2/model.js';
import { modelResponder } from '../../src/providers/emulated/ec2/msw.js';
import { LiveWorld } from '../../src/world/live-world.js';

/**
 * The emulated EC2 on a real HTTP server on 127.0.0.1, on real time: what a
 * `spillway run --cloud aws` process reaches through `AWS_ENDPOINT_URL_EC2`
 * with the SDK's own credential chain and endpoint resolution, as it would
 * reach AWS. No msw: the CLI under test runs in another process.
 */
export interface LoopbackEc2 {
  endpoint: string;
  model: Ec2Model;
  /** Actions in the order they arrived. */
  actions: string[];
  close(): Promise<void>;
}

export async function serveLoopbackEc2(cloud: unknown, seed = 1): Promise<LoopbackEc2> {
  const world = new LiveWorld(seed, () => {});
  const model = new Ec2Model(world, parseCloudConfig(cloud));
  const respond = modelResponder(world, model);
  const actions: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      actions.push(new URLSearchParams(body).get('Action') ?? '');
      void Promise.resolve(respond(body)).then((reply) => {
        const requestId = /<(?:requestId|RequestID)>([^<]+)</.exec(reply.body)?.[1];
        res.writeHead(reply.status, { 'content-type': 'text/xml;charset=UTF-8', ...(requestId ? { 'x-amzn-requestid': requestId } : {}) });
        res.end(reply.body);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`, model, actions,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
