import { fromPromise } from 'xstate';
import { SpillwayError } from '../../errors.js';
import type { StepInput } from '../../machines/flow.js';
import type { TransferData, TransferInput } from '../../machines/transfer.js';
import { CloudError, type InstanceTypeInfo } from '../../ports/cloud.js';
import type { BurstPolicy, Scenario } from '../../scenario/schema.js';
import type { World } from '../../world/types.js';
import type { MachineKit } from '../machine-kit.js';
import { bestFit } from './best-fit.js';
import { scoreTargets, type CloudTarget } from './target-scoring.js';

/** Capacity faults move the launch to the next zone, then the next type; anything else fails the step. */
const CAPACITY = /InsufficientInstanceCapacity|Unsupported|InsufficientCapacity/;

/** What the launcher needs of a burst VM's record. */
export interface LaunchRecord {
  vmId: string;
  zone: string | null;
  /** Null once the VM came home (or its burst failed). */
  homeUs: number | null;
  instanceId: string | null;
  instanceType: string | null;
  pricePerHourUsd: number;
  launchAttempts: number;
  io: { meanReadLatencyUs(): number } | null;
}

type Vm = Scenario['datacenter']['vms'][number];

/**
 * Where and on what a burst VM is launched (FIG 7 steps 721-723 as the burst
 * controller runs them): the best-fit instance types (§5, cheapest first),
 * the zones by §6 target score, and the transfer machine's `provision` step
 * that walks types × zones until one has capacity.
 */
export class Launcher {
  /** Capacity faults met so far (report.burst.launchFaults). */
  faults = 0;
  /** The launch candidates (types × zones, best first) of each VM being transferred. */
  private readonly plans = new Map<string, { types: InstanceTypeInfo[]; zones: string[] }>();

  constructor(
    private readonly world: World,
    private readonly scenario: Scenario,
    private readonly policy: BurstPolicy,
    private readonly catalog: InstanceTypeInfo[],
    private readonly records: ReadonlyMap<string, LaunchRecord>,
  ) {}

  /** Plan the VM's launch; empty when no type fits it. */
  plan(vm: Vm): InstanceTypeInfo[] {
    const fit = this.fits(vm);
    if (fit.length > 0) this.plans.set(vm.name, { types: fit, zones: this.zones(vm.workload) });
    return fit;
  }

  /** The launch is over (the transfer ended): its plan is no longer needed. */
  done(vmId: string): void {
    this.plans.delete(vmId);
  }

  typeOf(name: string | null): InstanceTypeInfo | undefined {
    return this.catalog.find((t) => t.name === name);
  }

  /**
   * FIG 7 step 723 as this controller runs it: RunInstances over the VM's
   * best-fit types × zones by §6 target score, the machine's chosen type
   * first. A capacity fault moves on to the next zone, then the next type;
   * each try has its own idempotency token, so a re-run step finds the
   * instance it already launched.
   */
  provisionActor(kit: MachineKit) {
    return fromPromise<Partial<TransferData>, StepInput<TransferInput, TransferData>>(async ({ input: step }) => {
      const { input, data, token, id } = step;
      const rec = this.records.get(input.vmId);
      const plan = this.plans.get(input.vmId);
      const chosen = this.catalog.find((t) => t.name === data.serverType);
      const types = [...(chosen ? [chosen] : []), ...(plan?.types ?? []).filter((t) => t.name !== data.serverType)];
      const zones: Array<string | undefined> = plan?.zones ?? [input.zone];
      let lastErr: unknown = null;
      let k = 0;
      for (const type of types) {
        for (const zone of zones) {
          k++;
          if (rec) rec.launchAttempts++;
          try {
            const [inst] = await kit.env.cloud.runInstances({
              clientToken: `${token}:${k}`, imageId: input.stagingImageId!, instanceType: type.name, ...(zone ? { zone } : {}), count: 1,
              userData: JSON.stringify({ vmId: input.vmId, flow: id }),
              tags: { 'spillway:run': kit.env.cloud.runId, 'spillway:flow': id, 'spillway:vm': input.vmId },
            });
            if (rec) {
              rec.instanceId = inst!.id;
              rec.instanceType = type.name;
              rec.zone = inst!.zone;
              rec.pricePerHourUsd = type.pricePerHourUsd;
            }
            return { instanceId: inst!.id, serverType: type.name };
          } catch (err) {
            lastErr = err;
            if (!(err instanceof CloudError) || !CAPACITY.test(err.code)) throw err;
            this.faults++;
            this.world.trace.emit('controller', 'controller.decision', { action: 'burst', vm: input.vmId, reason: `${err.code} for ${type.name} in ${zone ?? 'any zone'}: trying the next zone or type` });
          }
        }
      }
      throw new SpillwayError('E_NO_CAPACITY', `no capacity for ${input.vmId} in any fitting type or zone`, { cause: lastErr });
    });
  }

  /** Best fit first, then the next cheapest fits (tried when a type has no capacity). */
  private fits(vm: Vm): InstanceTypeInfo[] {
    const catalog = this.policy.instanceType === 'auto' ? this.catalog : this.catalog.filter((t) => t.name === this.policy.instanceType);
    const out: InstanceTypeInfo[] = [];
    let rest = [...catalog];
    for (;;) {
      const f = bestFit(rest, { vcpus: vm.vcpus, memoryMiB: vm.ramMiB, iops: 0, licences: [] });
      if (!f) return out;
      out.push(f.type);
      rest = rest.filter((t) => t.name !== f.type.name);
    }
  }

  /** Zones by §6 target score: the latency of proxies already there, how full they are, similar work. */
  private zones(workload: string): string[] {
    const targets: CloudTarget[] = this.scenario.cloud.zones.map((z) => {
      const here = [...this.records.values()].filter((r) => r.zone === z && r.homeUs === null);
      const lat = here.map((r) => r.io?.meanReadLatencyUs() ?? 0);
      return {
        id: z, storageLatencyUs: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : 0, workloadsOnHost: here.length,
        workloadKinds: here.map((r) => this.scenario.datacenter.vms.find((v) => v.name === r.vmId)!.workload),
        expandableGiB: 16384, storageUsdPerGiBMonth: this.policy.rates.cloudStorageUsdPerGiBMonth, allowedDataClasses: ['internal'],
        storageTransformations: 0, managementComplexity: 0.2, supportsHa: true,
      };
    });
    return scoreTargets(targets, { workloadKind: workload, diskGiB: 0, dataClass: 'internal', needsHa: false }, this.policy.targets.weights).map((t) => t.targetId);
  }
}
