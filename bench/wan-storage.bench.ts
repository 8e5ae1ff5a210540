/**
 * The spine's data-path models: the boot trace over the emulated WAN with no
 * proxy (a plain request/response, one read outstanding; exact, virtual
 * time), and what the models cost in real time (WAN bytes simulated per
 * second, generated-disk read rate, storage-tier requests per second).
 */
import { replayReads } from '../src/providers/emulated/guest/boot-profile.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { StorageTier, TIER_PRESETS } from '../src/providers/emulated/hypervisor/storage-tier.js';
import { WanLink, idealTransferUs, wanConfig } from '../src/providers/emulated/wan/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { BlockDevice } from '../src/proxy/block-device.js';
import type { Transport } from '../src/world/types.js';
import type { BenchFigure } from './run.js';

export const title = 'WAN, storage tier and guest content models';

const MBIT = 1e6 / 8;
const wallMs = (): number => globalThis.performance.now();

/** A BlockDevice whose reads cross the WAN: 16-byte request up, data down, one at a time. */
async function remoteOverWan(world: SimWorld, source: BlockDevice): Promise<BlockDevice> {
  await world.net.listen('onprem:7000', (server: Transport) => {
    let pending = Buffer.alloc(0);
    server.onData((chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 16) {
        const offset = Number(pending.readBigUInt64LE(0));
        const length = pending.readUInt32LE(8);
        pending = pending.subarray(16);
        void source.read(offset, length).then((data) => server.write(data));
      }
    });
  });
  const client = await world.net.connect('onprem:7000');
  let want = 0;
  let got: Buffer[] = [];
  let have = 0;
  let wake: ((b: Buffer) => void) | undefined;
  client.onData((chunk) => {
    got.push(chunk);
    have += chunk.length;
    if (have >= want && wake) {
      const all = Buffer.concat(got);
      got = [];
      have = 0;
      const w = wake;
      wake = undefined;
      w(all);
    }
  });
  const read = (offset: number, length: number): Promise<Buffer> => new Promise((resolve) => {
    want = length;
    wake = resolve;
    const req = Buffer.alloc(16);
    req.writeBigUInt64LE(BigInt(offset), 0);
    req.writeUInt32LE(length, 8);
    client.write(req);
  });
  return { ...source, name: 'remote', size: () => source.size(), read };
}

export async function run(): Promise<BenchFigure[]> {
  const figures: BenchFigure[] = [];
  const image = new GuestImage({ seed: 11, imageId: 'linux-base', sizeBytes: 8 * 1024 ** 3, os: 'linux' });
  const reads = image.boot.reads;
  const bytes = reads.reduce((s, r) => s + r.length, 0);

  // Real-time cost of the WAN model: 1 GiB over 4 connections at 1 Gbit/s.
  {
    const world = new SimWorld(1);
    world.net.setLink('onprem:7000', new WanLink(world, wanConfig({ rttUs: 40_000, downBytesPerS: 1000 * MBIT, lossRate: 0.0001, jitter: { kind: 'normal', sdUs: 1000 } })));
    const servers: Transport[] = [];
    await world.net.listen('onprem:7000', (t) => servers.push(t));
    let received = 0;
    let lastUs = 0;
    for (let i = 0; i < 4; i++) {
      const c = await world.net.connect('onprem:7000');
      c.onData((b) => { received += b.length; lastUs = world.clock.nowUs(); });
    }
    const chunk = Buffer.alloc(1024 * 1024);
    const t0 = wallMs();
    // Senders respect backpressure, as the proxy link does: write until told to wait, resume on drain.
    for (const s of servers) {
      let left = 256;
      const pump = (): void => {
        while (left > 0) {
          left--;
          if (!s.write(chunk)) return;
        }
      };
      s.onDrain(pump);
      pump();
    }
    const r = await world.run();
    const seconds = (wallMs() - t0) / 1000;
    figures.push({ name: 'WAN model: GiB simulated per wall second', value: received / 1024 ** 3 / seconds, unit: 'GiB/s', note: `${r.events} events; the last byte lands at ${(lastUs / 1e6).toFixed(3)} s virtual` });
  }

  // Boot with no proxy: every read pays a round trip plus its serialization.
  {
    const world = new SimWorld(11);
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT });
    world.net.setLink('onprem:7000', new WanLink(world, cfg));
    const remote = await remoteOverWan(world, image.disk('vm1'));
    let elapsedUs = 0;
    void replayReads(world, remote, reads).then((r) => (elapsedUs = r.elapsedUs));
    await world.run();
    const formulaUs = reads.reduce((s, r) => s + idealTransferUs(16, cfg, 'up') + idealTransferUs(r.length, cfg), 0);
    figures.push({ name: 'boot trace reads', value: reads.length, unit: 'reads', note: `${(bytes / 1048576).toFixed(1)} MiB` });
    figures.push({ name: 'boot over 40 ms / 100 Mbit WAN, no proxy (simulated)', value: elapsedUs / 1e6, unit: 's', note: 'NOTES.md measured ~83 s live through nbdkit' });
    figures.push({ name: 'same, by the model formula', value: formulaUs / 1e6, unit: 's', note: elapsedUs === formulaUs ? 'simulation = formula' : `off by ${elapsedUs - formulaUs} µs` });
  }

  // Generated disk read rate (mixed content, 64 KiB reads).
  {
    const disk = image.disk('speed');
    const t0 = wallMs();
    const n = 4096;
    for (let i = 0; i < n; i++) await disk.read(((i * 2654435761) % 120_000) * 65536, 65536);
    const seconds = (wallMs() - t0) / 1000;
    figures.push({ name: 'generated disk: 64 KiB random reads', value: (n * 65536) / seconds / 1048576, unit: 'MiB/s', target: { op: '>=', value: 200 } });
  }

  // Storage tier: requests modeled per wall second.
  {
    const world = new SimWorld(1);
    const tier = new StorageTier(world, new SparseStore('d', 1024 ** 3), TIER_PRESETS.nvme!);
    const n = 100_000;
    const t0 = wallMs();
    for (let i = 0; i < n; i++) void tier.read(((i * 7919) % 200_000) * 4096, 4096);
    await world.run();
    const seconds = (wallMs() - t0) / 1000;
    figures.push({ name: 'storage tier: 4 KiB reads modeled per wall second', value: n / seconds, unit: 'req/s', note: `${(world.nowUs / 1000).toFixed(1)} ms virtual for ${n} reads on nvme` });
  }
  return figures;
}
