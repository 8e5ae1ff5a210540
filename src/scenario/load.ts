import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { EmulatedHypervisor } from '../providers/emulated/hypervisor/hypervisor.js';
import { fail, join } from '../util/check.js';
import { formatDurationUs } from '../util/units.js';
import { SimWorld } from '../world/sim-world.js';
import { SCENARIO_LIMITS } from './bounds.js';
import { checkExpectations } from './expect.js';
import { scenarioFileSchema, type ScenarioFile } from './file.js';
import { parseSection } from './issues.js';
import { checkPolicies } from './policies/index.js';
import type { Scenario } from './schema.js';
import { checkTimeline } from './timeline.js';
import { readScenarioDoc, tooLarge } from './yaml-doc.js';

/**
 * Read and validate a scenario: the file within its bounds, then the format declared in
 * src/scenario/file.ts, then the references between sections and the bounds that depend on
 * several fields, then a trial placement of every VM. Every error names the field path and
 * what is allowed there, with the line in the file when it can be found; nothing unknown is
 * ignored.
 */
export interface ScenarioChecks {
  /** The report metrics an `expect:` clause may name (the report derives them from the scenario); without it, any metric name is accepted. */
  metricPaths?: (scenario: Scenario) => ReadonlySet<string>;
}

export function loadScenarioFile(path: string, checks: ScenarioChecks = {}): Scenario {
  let text: string;
  try {
    // The size is checked on the open file, before any of it is read.
    const fd = openSync(path, 'r');
    try {
      const bytes = fstatSync(fd).size;
      if (bytes > SCENARIO_LIMITS.fileBytes) throw tooLarge(path, bytes);
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError('E_SCENARIO_READ', `cannot read scenario ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseScenario(text, path, checks);
}

export function parseScenario(text: string, sourceName: string, checks: ScenarioChecks = {}): Scenario {
  const doc = readScenarioDoc(text, sourceName);
  try {
    const file = parseSection(scenarioFileSchema, doc.data, '');
    const scenario: Scenario = { ...file, sourceName };
    checkScenario(scenario);
    if (checks.metricPaths) checkExpectations(scenario.expect, 'expect', checks.metricPaths(scenario));
    planPlacement(scenario);
    return scenario;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const path = typeof err.details?.path === 'string' ? err.details.path : undefined;
    const line = path === undefined ? undefined : doc.lineOf(path);
    const where = line === undefined ? sourceName : `${sourceName} line ${line}`;
    throw new InputError(err.code, `${where}: ${err.message}`, { cause: err, details: { ...err.details, ...(path ? { path } : {}), ...(line ? { line } : {}) } });
  }
}

/** The checks that span sections: references by name, and how many samples and ticks a run takes. */
function checkScenario(s: ScenarioFile): void {
  const workloads = Object.keys(s.workloads);
  for (const vm of s.datacenter.vms) {
    if (!workloads.includes(vm.workload)) fail(join(join('datacenter.vms', vm.entry), 'workload'), `one of ${workloads.join(', ')}`, vm.workload);
  }
  for (const [field, everyUs, max] of [['sampleEvery', s.sampleEveryUs, SCENARIO_LIMITS.samples], ['tickEvery', s.tickEveryUs, SCENARIO_LIMITS.ticks]] as const) {
    if (s.durationUs / everyUs > max) {
      fail('duration', `at most ${max} × ${field} (${formatDurationUs(everyUs)}): ${formatDurationUs(max * everyUs)}; raise ${field} for a longer run`, formatDurationUs(s.durationUs));
    }
  }
  const kinds = Object.fromEntries(Object.entries(s.workloads).map(([n, w]) => [n, w.kind]));
  const vms = s.datacenter.vms.map((v) => ({ name: v.name, workload: v.workload }));
  checkPolicies(s.policies, 'policies', { workloads, cloud: s.cloud, kinds, vms });
  checkTimeline(s.timeline, 'timeline', {
    durationUs: s.durationUs, hasWan: s.wan !== null, hostIds: s.datacenter.hosts.map((h) => h.id), vmNames: vms.map((v) => v.name), workloadKinds: kinds,
  });
}

/**
 * Place every VM the way the run will, on a throwaway world, so a data center
 * that does not fit is a validation error rather than a failed run.
 */
function planPlacement(s: Scenario): void {
  const hv = new EmulatedHypervisor(new SimWorld(0), { hosts: s.datacenter.hosts });
  for (const vm of s.datacenter.vms) {
    hv.addVm({ id: vm.name, name: vm.name, vcpus: vm.vcpus, ramMiB: vm.ramMiB, workload: vm.workload, batch: false, disks: [], guest: PLACEMENT_ONLY_GUEST, dirtyRateBytesPerS: 0 });
    try {
      hv.placeRunning(vm.name, vm.host ?? undefined);
    } catch (err) {
      const field = join(join('datacenter.vms', vm.entry), vm.host ? 'host' : 'ramGiB');
      throw new InputError('E_NO_ROOM', `${field}: VM ${vm.name} does not fit: ${(err as Error).message}`, { details: { path: field } });
    }
  }
}

/** Placement checks only need CPU and RAM; the guest configuration plays no part in them. */
const PLACEMENT_ONLY_GUEST = {
  os: { family: 'linux' as const, distro: 'none', version: '0' }, bootDevice: '', devices: [], drivers: [], mounts: [],
  network: { hostname: '', domain: '', ipAddress: '', gateway: '', dns: [], dhcp: true },
  monitoringAgent: { installed: false, enabled: false, target: 'onprem' as const },
  identity: { machineName: '', machineId: '', domainJoined: false }, licences: [],
};
