import { describe, expect, it } from 'vitest';
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import { cloneMachine } from '../src/machines/clone.js';
import { cloneDropMachine } from '../src/machines/clone-drop.js';
import { containerTransferMachine } from '../src/machines/container-transfer.js';
import { containerizeMachine } from '../src/machines/containerize.js';
import { formatCoverage, pathCoverage, type CoverageOptions, type CoverageReport } from './helpers/machine-coverage.js';
import { cutoverMachine } from '../src/machines/cutover.js';
import type { FlowConfig } from '../src/machines/flow.js';
import { instanceMachine } from '../src/machines/instance.js';
import { migrationMachine } from '../src/machines/migration.js';
import { proxyResizeMachine } from '../src/machines/proxy-resize.js';
import { retireMachine } from '../src/machines/retire.js';
import { reverseMachine } from '../src/machines/reverse.js';
import { transferMachine } from '../src/machines/transfer.js';
import { sampleGuest } from './machines-doubles.js';

// Two attempts per step keep the graph small while still covering retry and exhaustion.
const config: FlowConfig = {
  timeoutsUs: {}, defaultTimeoutUs: 60_000_000,
  retry: { maxAttempts: 2, backoffBaseUs: 1_000_000, backoffMaxUs: 4_000_000, backoffFactor: 2 },
};
const ctx = (s: AnyMachineSnapshot) => s.context as { data: Record<string, unknown> };

const round = (dirtyBytes: number, dirtyRate: number, linkRate: number) => ({
  round: { round: 1, sentBytes: 1, durationUs: 1, dirtyBytes, dirtyRateBytesPerS: dirtyRate, linkRateBytesPerS: linkRate },
});

const CASES: Array<[AnyStateMachine, CoverageOptions]> = [
  [transferMachine, {
    inputs: (['stateless', 'stateful'] as const).map((kind) => ({ id: 't', config, transfer: { vmId: 'vm', kind, direction: 'O2C' } })),
    variants: { ROLLBACK: [{ type: 'ROLLBACK', reason: 'operator' }] },
  }],
  [reverseMachine, {
    inputs: [{ 'd0': 'on-prem', 'd1': 'cloud-only' }, { 'd0': 'on-prem' }, { 'd0': 'cloud-only' }].map((persistence) => ({
      id: 'r', config,
      reverse: { vmId: 'vm', preMoveSnapshotId: 's', originalGuest: sampleGuest('vm'), targetHostId: 'h1', exports: [], persistence, leaseOwner: 't', powerOn: true },
    })),
  }],
  [cloneMachine, {
    inputs: [{ id: 'c', config, clone: { sourceVmId: 'vm', cloneIndex: 1, stagingImageId: 'ami', persistence: 'cloud-only', siblingReads: true, siblingSources: [] } }],
  }],
  [cutoverMachine, {
    inputs: [{ id: 'x', config, cutover: { sourceVmId: 'vm', targetId: 'i', maxRounds: 3, switchBudgetUs: 1_000_000, stallRatio: 0.9, stallRounds: 2 } }],
    // converging (1 byte left), slow but not stalled, stalled (dirty rate above the link)
    outputs: { mirror: [round(1, 0, 1e9), round(1e10, 10, 1e6), round(1e12, 2e6, 1e6)] },
    project: (s) => [ctx(s).data.rounds, ctx(s).data.stalls],
  }],
  [migrationMachine, {
    inputs: [{ id: 'm', config, migration: { vmId: 'vm', instanceId: 'i', zone: 'z', diskIds: ['d0'], volumeType: 'gp3', syncChunkBytes: 1, initialIntervalUs: 4_000_000, minIntervalUs: 1_000_000, intervalFactor: 0.5 } }],
    outputs: {
      sync: [{ progress: { syncedBytes: 1, totalBytes: 1, dirtyBytes: 0 } }, { progress: { syncedBytes: 0, totalBytes: 1, dirtyBytes: 0 } }],
      enterMigrationMode: [{ progress: { syncedBytes: 0, totalBytes: 1, dirtyBytes: 0 } }],
    },
    project: (s) => {
      const p = ctx(s).data.progress as { syncedBytes: number; totalBytes: number } | undefined;
      return [p ? p.syncedBytes >= p.totalBytes : null, ctx(s).data.waitUs ? 1 : 0];
    },
  }],
  [proxyResizeMachine, {
    inputs: [{ kind: 'cache', capacityBytes: 1 }, { kind: 'scaleUp', instanceType: 'm5.2xlarge' }, { kind: 'scaleOut', count: 2, instanceType: 'm5.large', imageId: 'ami' }]
      .map((request) => ({ id: 'p', config, resize: { proxyId: 'p', instanceId: 'i', request } })),
  }],
  [containerizeMachine, {
    inputs: [{ id: 'z', config, containerize: { vmId: 'vm', mode: 'deactivate' } }],
  }],
  [containerTransferMachine, {
    inputs: [{ kind: 'vm', vmId: 'vm', site: 'remote' }, { kind: 'container', containerId: 'c', diskIds: ['d'], site: 'remote' }]
      .map((transfer) => ({ id: 'ct', config, transfer })),
  }],
  [cloneDropMachine, {
    // on-prem writes (flushWrites first) or cloud-only; a clone that joined a domain or none
    inputs: ([['on-prem', true], ['cloud-only', false]] as const).map(([persistence, joined]) => ({
      id: 'd', config,
      drop: {
        cloneVmId: 'vm-c1', cloneId: 'c', instanceId: 'i', persistence, exports: [], siblingSources: [],
        identity: joined ? { machineName: 'vm-c1', machineId: 'm' } : null, domain: joined ? 'corp' : null,
      },
    })),
    variants: { ROLLBACK: [{ type: 'ROLLBACK', reason: 'operator' }] },
  }],
  [retireMachine, {
    inputs: ['s', null].map((snapshotId) => ({ id: 'r', config, retire: { vmId: 'vm', exports: [], leaseOwner: 't', snapshotId } })),
    variants: { ROLLBACK: [{ type: 'ROLLBACK', reason: 'operator' }] },
  }],
  [instanceMachine, {
    inputs: (['onprem', 'cloud'] as const).map((initial) => ({ id: 'i', config, goal: 'cloud', instance: { vmId: 'vm', initial } })),
    variants: {
      SET_GOAL: [{ type: 'SET_GOAL', goal: 'migrated' }],
      CLONED: [{ type: 'CLONED', count: 2 }],
      FAILED: [{ type: 'FAILED', code: 'E_X', message: 'x' }],
      RECOVERED: [{ type: 'RECOVERED', where: 'onprem' }, { type: 'RECOVERED', where: 'cloud' }],
    },
  }],
];

describe('path coverage with xstate/graph', () => {
  const reports: CoverageReport[] = [];

  it.each(CASES.map(([m, o]) => [m.id, m, o] as const))('%s: generated paths reach every state and every transition', (_name, machine, options) => {
    const r = pathCoverage(machine, options);
    reports.push(r);
    expect(r.states.missing, `${r.machine}: states no path reaches`).toEqual([]);
    expect(r.transitions.missing, `${r.machine}: transitions no path takes`).toEqual([]);
    expect(r.paths).toBeGreaterThan(0);
  });

  it('reports the coverage of every machine', () => {
    console.log(`\n${formatCoverage(reports)}`);
    expect(reports).toHaveLength(CASES.length);
    const states = reports.reduce((a, r) => a + r.states.covered, 0);
    const total = reports.reduce((a, r) => a + r.states.total, 0);
    expect(states).toBe(total);
  });
});
