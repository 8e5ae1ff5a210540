import type { World } from '../../../world/types.js';
import { Ec2Cloud, normalLatencyUs } from '../../aws/ec2-cloud.js';
import type { WireRecord } from '../../aws/recorder.js';
import type { CloudConfig } from './config.js';
import { Ec2Model } from './model.js';
import { EMULATED_EPOCH_MS } from './state.js';
import { modelResponder, registerEndpoint } from './msw.js';

/** Not secrets: the emulator checks no signature, and these never reach AWS (the endpoint is `.invalid`). */
export const EMULATED_CREDENTIALS = { accessKeyId: 'AKIASPILLWAYEMULATED', secretAccessKey: 'spillway-emulated-ec2-not-a-secret' };

/** The production adapter, pointed at a stateful EC2 model served by msw. */
export class EmulatedEc2Cloud extends Ec2Cloud {
  constructor(readonly model: Ec2Model, readonly endpoint: string, private readonly release: () => void, options: ConstructorParameters<typeof Ec2Cloud>[0]) {
    super(options);
  }

  /** Stop serving this model (msw closes with the last one). */
  dispose(): void {
    this.release();
    this.destroy();
  }
}

/**
 * A Cloud for a simulation: the real EC2 adapter, talking through msw to an
 * emulated EC2 on `world`'s clock. Starts msw for this process on first use;
 * never call it in a process that carries the proxy data path.
 */
export function createEmulatedCloud(world: World, config: CloudConfig, runId: string, options: { record?: (entry: WireRecord) => void } = {}): EmulatedEc2Cloud {
  const model = new Ec2Model(world, config);
  const { endpoint, release } = registerEndpoint('ec2', modelResponder(world, model));
  return new EmulatedEc2Cloud(model, endpoint, release, {
    world,
    runId,
    region: config.region,
    endpoint,
    credentials: EMULATED_CREDENTIALS,
    latencyUs: normalLatencyUs(world, config.api.latency.meanUs, config.api.latency.sdUs),
    prices: Object.fromEntries(config.catalog.map((c) => [c.type, c.pricePerHour])),
    vcpuLimit: config.quotas.vcpus,
    sequential: true,
    epochMs: EMULATED_EPOCH_MS,
    ...(options.record ? { record: options.record } : {}),
  });
}
