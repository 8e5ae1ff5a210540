import type { World } from '../world/types.js';
import { Ec2Cloud, type LaunchSettings } from './aws/ec2-cloud.js';
import { fileRecorder, type WireRecord } from './aws/recorder.js';
import type { Cloud, ImageInfo } from '../ports/cloud.js';
import type { CloudConfig } from './emulated/ec2/config.js';

export interface OpenCloudOptions {
  /** `--cloud`: overrides the scenario's `cloud.provider`. */
  cloud?: 'emulated' | 'aws';
  /** `--region`: overrides the scenario's region (live only). */
  region?: string;
  /** `--profile`: the AWS profile for the SDK's default credential chain (live only). */
  profile?: string;
  /** `--record FILE`: write the wire traffic as a replayable JSONL fixture. */
  recordFile?: string;
  /** Live: the checked staging image (types that cannot boot it are not offered). */
  stagingImage?: ImageInfo;
  /** Live: subnets, security groups and instance profile for launches. */
  launch?: LaunchSettings;
}

export type OpenedCloud = Cloud & { dispose(): void };

/**
 * The one switch between emulated and live EC2: the same adapter either way,
 * pointed at msw's emulator or at AWS with the SDK's default credential chain.
 * The emulator module (and so msw) is loaded only when asked for, so a live
 * process never patches node:http.
 */
export async function openCloud(world: World, config: CloudConfig, runId: string, options: OpenCloudOptions = {}): Promise<OpenedCloud> {
  const provider = options.cloud ?? config.provider;
  if (provider === 'aws') return openLiveCloud(world, config, runId, options);
  const { createEmulatedCloud } = await import('./emulated/ec2/emulated-cloud.js');
  const record = recorderFor(config, options, 'emulator');
  return createEmulatedCloud(world, config, runId, record ? { record } : {});
}

/** Live EC2 through the SDK's default credential chain; synchronous so a simulation can build it in place. */
export function openLiveCloud(world: World, config: CloudConfig, runId: string, options: OpenCloudOptions = {}): Ec2Cloud & OpenedCloud {
  const record = recorderFor(config, options, 'aws');
  const cloud = new Ec2Cloud({
    world, runId, region: options.region ?? config.region,
    ...(options.profile ? { profile: options.profile } : {}),
    prices: Object.fromEntries(config.catalog.map((c) => [c.type, c.pricePerHour])),
    // The scenario's quota is the operator's statement of the account's Service Quotas value.
    vcpuLimit: config.quotas.vcpus,
    ...(record ? { record } : {}),
    ...(options.stagingImage ? { stagingImage: options.stagingImage } : {}),
    ...(options.launch ? { launch: options.launch } : {}),
  });
  return Object.assign(cloud, { dispose: () => cloud.destroy() });
}

function recorderFor(config: CloudConfig, options: OpenCloudOptions, source: 'aws' | 'emulator'): ((entry: WireRecord) => void) | undefined {
  if (!options.recordFile) return undefined;
  return fileRecorder(options.recordFile, { fixture: 'spillway-ec2-wire', version: 1, source, region: options.region ?? config.region });
}
