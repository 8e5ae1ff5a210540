import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import { InputError } from '../src/errors.js';
import {
  PLATFORMS, analyseGuest, chooseFramework, chooseInstanceType, classifyPersistence, cloneIdentity, disableDevices,
  enableMonitoring, installDrivers, regenerateIdentity, remapMounts, rewriteNetwork,
} from '../src/machines/adapt.js';
import { cutoverMachine, NOT_CONVERGING, predictedSwitchUs } from '../src/machines/cutover.js';
import { backoffOf, checkFlowConfig, type FlowConfig } from '../src/machines/flow.js';
import { checkGoal, instanceMachine, report } from '../src/machines/instance.js';
import { migrationMachine } from '../src/machines/migration.js';
import { proxyResizeMachine } from '../src/machines/proxy-resize.js';
import { statePath } from '../src/machines/runtime.js';
import { transferMachine } from '../src/machines/transfer.js';
import { FakeHypervisor, Faults, sampleGuest } from './machines-doubles.js';
import { SimWorld } from '../src/world/sim-world.js';

const config: FlowConfig = {
  timeoutsUs: { provision: 30_000_000 }, defaultTimeoutUs: 60_000_000,
  retry: { maxAttempts: 3, backoffBaseUs: 1_000_000, backoffMaxUs: 3_000_000, backoffFactor: 2 },
};
const path = (s: AnyMachineSnapshot) => statePath(s.value);
const transferInput = (kind: 'stateless' | 'stateful' = 'stateless') => ({ id: 't1', config, transfer: { vmId: 'vm', kind, direction: 'O2C' as const } });

describe('flow steps with transition()', () => {
  it('starts a stateless transfer at deactivate and a stateful one at captureState', () => {
    expect(path(initialTransition(transferMachine, transferInput())[0])).toBe('deactivate');
    expect(path(initialTransition(transferMachine, transferInput('stateful'))[0])).toBe('captureState');
  });

  it('moves on when the step actor is done, merging its output into data', () => {
    const [s0] = initialTransition(transferMachine, transferInput());
    const [s1] = transition(transferMachine, s0, { type: 'xstate.done.actor.deactivate', output: { originHostId: 'h1', wasRunning: true } } as never);
    expect(path(s1)).toBe('snapshot');
    expect(s1.context.data).toEqual({ originHostId: 'h1', wasRunning: true });
    expect(s1.context.completed).toEqual(['deactivate']);
    expect(s1.context.attempt).toBe(1);
  });

  it('retries a retryable error after a backoff and rolls back on a fatal one', () => {
    const [s0] = initialTransition(transferMachine, transferInput());
    const busy = Object.assign(new Error('throttled'), { code: 'RequestLimitExceeded' });
    const [s1] = transition(transferMachine, s0, { type: 'xstate.error.actor.deactivate', error: busy } as never);
    expect(path(s1)).toBe('deactivate.backoff');
    expect(s1.context.timer).toMatchObject({ kind: 'backoff', durationUs: 1_000_000, startedAtUs: null });
    expect(s1.context.errors.map((e) => e.code)).toEqual(['RequestLimitExceeded']);
    // A stale timer (another key) changes nothing; the matching one starts the next attempt.
    const [stale] = transition(transferMachine, s1, { type: 'timer.fired', key: 'old' });
    expect(path(stale)).toBe('deactivate.backoff');
    const [s2] = transition(transferMachine, s1, { type: 'timer.fired', key: s1.context.timer!.key });
    expect(path(s2)).toBe('deactivate');
    expect(s2.context.attempt).toBe(2);
    expect(s2.context.timer).toMatchObject({ kind: 'timeout', durationUs: 60_000_000 });
    const [s3] = transition(transferMachine, s2, { type: 'xstate.error.actor.deactivate', error: Object.assign(new Error('gone'), { code: 'E_NO_VM' }) } as never);
    expect(path(s3)).toBe('rollingBack');
    expect(s3.context.failure).toMatchObject({ step: 'deactivate', code: 'E_NO_VM', attempt: 2 });
    expect(s3.context.phase).toBe('rollback');
  });

  it('spends the retry budget on timeouts, then rolls back with E_TIMEOUT', () => {
    let [s] = initialTransition(transferMachine, transferInput());
    for (let i = 0; i < 2; i++) {
      [s] = transition(transferMachine, s, { type: 'timer.fired', key: s.context.timer!.key });
      expect(path(s)).toBe('deactivate.backoff');
      [s] = transition(transferMachine, s, { type: 'timer.fired', key: s.context.timer!.key });
    }
    [s] = transition(transferMachine, s, { type: 'timer.fired', key: s.context.timer!.key });
    expect(path(s)).toBe('rollingBack');
    expect(s.context.failure).toMatchObject({ code: 'E_TIMEOUT', attempt: 3 });
  });

  it('takes ROLLBACK in the forward phase only, and ends rolled-back when the rollback actor is done', () => {
    const [s0] = initialTransition(transferMachine, transferInput());
    const [s1] = transition(transferMachine, s0, { type: 'ROLLBACK', reason: 'abort' });
    expect(path(s1)).toBe('rollingBack');
    const [s2] = transition(transferMachine, s1, { type: 'ROLLBACK' });
    expect(s2.context.errors).toHaveLength(1);
    const [s3] = transition(transferMachine, s1, { type: 'xstate.done.actor.rollback', output: {} } as never);
    expect(s3.status).toBe('done');
    expect(s3.output).toMatchObject({ outcome: 'rolled-back', failure: { code: 'E_ROLLBACK_REQUESTED', message: 'abort' } });
  });

  it('uses the per-step timeout from config', () => {
    let [s] = initialTransition(transferMachine, transferInput());
    const steps = ['deactivate', 'snapshot', 'mount', 'classify', 'analyse', 'disableDevices', 'installDrivers', 'remapMounts', 'rewriteNetwork', 'enableMonitoring', 'prioritizeBlocks', 'chooseServer'];
    for (const a of steps) [s] = transition(transferMachine, s, { type: `xstate.done.actor.${a}`, output: {} } as never);
    expect(path(s)).toBe('provision');
    expect(s.context.timer).toMatchObject({ kind: 'timeout', durationUs: 30_000_000 });
  });

  it('rejects a bad flow config naming the field', () => {
    expect(() => checkFlowConfig({ ...config, retry: { ...config.retry, maxAttempts: 0 } })).toThrow(/config\.retry\.maxAttempts: expected an integer from 1 to 100/);
    expect(() => checkFlowConfig({ ...config, timeoutsUs: { provision: -1 } })).toThrow(InputError);
    expect(backoffOf(config, 1)).toBe(1_000_000);
    expect(backoffOf(config, 5)).toBe(3_000_000);
  });
});

describe('cut-over convergence with transition()', () => {
  const input = { id: 'c', config, cutover: { sourceVmId: 'vm', targetId: 'i', maxRounds: 5, switchBudgetUs: 1_000_000, stallRatio: 0.9, stallRounds: 2 } };
  const mirrored = (s: AnyMachineSnapshot, dirtyBytes: number, dirtyRate: number, linkRate = 100e6) =>
    transition(cutoverMachine, s as never, { type: 'xstate.done.actor.mirror', output: { round: { round: 1, sentBytes: 1, durationUs: 1, dirtyBytes, dirtyRateBytesPerS: dirtyRate, linkRateBytesPerS: linkRate } } } as never)[0];
  const toMirror = () => {
    let [s] = initialTransition(cutoverMachine, input);
    [s] = transition(cutoverMachine, s, { type: 'xstate.done.actor.captureRunState', output: {} } as never);
    [s] = transition(cutoverMachine, s, { type: 'xstate.done.actor.replicateRunState', output: {} } as never);
    return s;
  };

  it('switches when the measured delta fits the budget', () => {
    const s = mirrored(toMirror(), 50e6, 10e6);
    expect(path(s)).toBe('switchover.pauseSource');
    expect(s.context.data.predictedSwitchUs).toBe(500_000);
  });

  it('keeps mirroring while the delta shrinks, and fails NOT_CONVERGING after consecutive stalls', () => {
    let s = mirrored(toMirror(), 500e6, 40e6);
    expect(path(s)).toBe('mirror');
    expect(s.context.data.stalls).toBe(0);
    s = mirrored(s, 800e6, 95e6);
    expect(path(s)).toBe('mirror');
    expect(s.context.data.stalls).toBe(1);
    s = mirrored(s, 900e6, 99e6);
    expect(path(s)).toBe('rollingBack');
    expect(s.context.failure?.code).toBe(NOT_CONVERGING);
  });

  it('bounds the rounds', () => {
    let s = toMirror();
    for (let i = 0; i < 4; i++) s = mirrored(s, 500e6, 10e6);
    expect(path(s)).toBe('mirror');
    s = mirrored(s, 500e6, 10e6);
    expect(path(s)).toBe('rollingBack');
    expect(s.context.failure?.message).toMatch(/after 5 rounds/);
    expect(predictedSwitchUs({ round: 0, sentBytes: 0, durationUs: 0, dirtyBytes: 1, dirtyRateBytesPerS: 0, linkRateBytesPerS: 0 })).toBe(Infinity);
  });

  it('rejects bad cut-over settings naming the field', () => {
    // A machine whose input is bad never starts: the snapshot carries the error naming the field.
    const [bad] = initialTransition(cutoverMachine, { ...input, cutover: { ...input.cutover, stallRatio: 2 } });
    expect(bad.status).toBe('error');
    expect(String((bad as { error?: unknown }).error)).toMatch(/cutover\.stallRatio: expected a number in \(0, 1\]/);
  });
});

describe('migration with transition()', () => {
  const input = { id: 'm', config, migration: { vmId: 'vm', instanceId: 'i', zone: 'z', diskIds: ['d'], volumeType: 'gp3', syncChunkBytes: 1, initialIntervalUs: 8_000_000, minIntervalUs: 1_500_000, intervalFactor: 0.5 } };
  it('shortens the sync interval each round down to the floor, pauses and resumes', () => {
    let [s] = initialTransition(migrationMachine, input);
    for (const a of ['compatibilityCheck', 'setupStorage']) [s] = transition(migrationMachine, s, { type: `xstate.done.actor.${a}`, output: {} } as never);
    const notSynced = { progress: { syncedBytes: 0, totalBytes: 10, dirtyBytes: 0 } };
    [s] = transition(migrationMachine, s, { type: 'xstate.done.actor.enterMigrationMode', output: notSynced } as never);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      expect(path(s)).toBe('syncWait');
      waits.push(s.context.timer!.durationUs);
      [s] = transition(migrationMachine, s, { type: 'timer.fired', key: s.context.timer!.key });
      [s] = transition(migrationMachine, s, { type: 'xstate.done.actor.sync', output: notSynced } as never);
    }
    expect(waits).toEqual([8_000_000, 4_000_000, 2_000_000, 1_500_000]);
    [s] = transition(migrationMachine, s, { type: 'PAUSE' });
    expect(path(s)).toBe('paused');
    [s] = transition(migrationMachine, s, { type: 'RESUME' });
    expect(path(s)).toBe('sync');
    [s] = transition(migrationMachine, s, { type: 'xstate.done.actor.sync', output: { progress: { syncedBytes: 10, totalBytes: 10, dirtyBytes: 0 } } } as never);
    expect(path(s)).toBe('awaitWindow');
    [s] = transition(migrationMachine, s, { type: 'MAINTENANCE_WINDOW' });
    expect(path(s)).toBe('cutover.stopInstance');
  });
});

describe('proxy resize and instance with transition()', () => {
  it('starts at the branch the request asks for, and rejects a bad request naming the field', () => {
    const start = (request: unknown) => {
      const [s] = initialTransition(proxyResizeMachine, { id: 'p', config, resize: { proxyId: 'p', instanceId: 'i', request: request as never } });
      if (s.status === 'error') throw (s as { error?: unknown }).error;
      return path(s);
    };
    expect(start({ kind: 'cache', capacityBytes: 1 })).toBe('cache.checkUsage');
    expect(start({ kind: 'scaleUp', instanceType: 'x' })).toBe('scaleUp.drain');
    expect(start({ kind: 'scaleOut', count: 2, instanceType: 'x', imageId: 'a' })).toBe('scaleOut.provisionPeers');
    expect(() => start({ kind: 'scaleOut', count: 0, instanceType: 'x', imageId: 'a' })).toThrow(/resize\.request\.count: expected an integer from 1 to 64/);
    expect(() => start({ kind: 'shrink' })).toThrow(/resize\.request\.kind/);
  });

  it('reports against the goal', () => {
    let [s] = initialTransition(instanceMachine, { id: 'i', config, goal: 'migrated', instance: { vmId: 'vm', initial: 'cloud' } });
    expect(report(s)).toEqual({ vmId: 'vm', goal: 'migrated', current: 'cloudStreaming', relation: 'diverged' });
    [s] = transition(instanceMachine, s, { type: 'MIGRATING' });
    expect(report(s).relation).toBe('converging');
    [s] = transition(instanceMachine, s, { type: 'MIGRATED' });
    expect(report(s).relation).toBe('at-goal');
    expect(() => checkGoal('moon')).toThrow(/goal: expected one of onprem, cloud, cloned, migrated/);
  });
});

describe('adaptations (pure, idempotent)', () => {
  const vm = () => {
    const hv = new FakeHypervisor(new SimWorld(1), new Faults());
    hv.addHost('h1');
    hv.addVm('web', 'h1');
    return hv.vm('web');
  };

  it('analyses and classifies persistence from the mounts', () => {
    const v = vm();
    const a = analyseGuest(v, PLATFORMS.ec2);
    expect(a.incompatibleDevices).toEqual(['cd0', 'net0', 'scsi0', 'tools']);
    expect(a.missingDrivers).toEqual(['nvme', 'ena', 'nbd']);
    expect(a.nonPersistentDisks).toEqual(['web-d2']);
    expect(classifyPersistence(v)).toEqual({ 'web-d0': 'on-prem', 'web-d1': 'on-prem', 'web-d2': 'cloud-only' });
    expect(classifyPersistence(v, { 'web-d1': 'cloud-only' })['web-d1']).toBe('cloud-only');
  });

  it('applies each adaptation once, however often it runs', () => {
    const g = sampleGuest('web');
    const exports = [{ diskId: 'web-d0', exportName: 'e0', policy: 'on-prem' as const }, { diskId: 'web-d2', exportName: 'e2', policy: 'cloud-only' as const }];
    const all = () => {
      disableDevices(g, PLATFORMS.ec2);
      installDrivers(g, PLATFORMS.ec2);
      remapMounts(g, exports, 'web-d0');
      rewriteNetwork(g, PLATFORMS.ec2);
      enableMonitoring(g, PLATFORMS.ec2);
    };
    all();
    const once = structuredClone(g);
    all();
    expect(g).toEqual(once);
    expect(g.mounts.map((m) => m.device)).toEqual(['nbd:e0p1', '/dev/sdb1', 'local:e2p1']);
    expect(g.devices.filter((d) => d.enabled).map((d) => d.kind)).toEqual(['nvme', 'ena']);
  });

  it('gives clones unique identities', () => {
    const g = sampleGuest('web');
    const ids = [1, 2, 3].map((i) => cloneIdentity(g, i, 'run-1'));
    expect(new Set(ids.map((i) => i.machineId)).size).toBe(3);
    expect(ids[0]!.machineName).toBe('web-c1');
    regenerateIdentity(g, ids[0]!);
    expect(g.identity).toEqual({ machineName: 'web-c1', machineId: ids[0]!.machineId, domainJoined: false });
  });

  it('picks the cheapest fitting instance type, fewest cores under a per-core licence', () => {
    const types = [
      { name: 'big', vcpus: 16, memoryMiB: 65536, ebsIops: 20000, networkGbit: 25, pricePerHourUsd: 0.5 },
      { name: 'small', vcpus: 4, memoryMiB: 16384, ebsIops: 6000, networkGbit: 10, pricePerHourUsd: 0.6 },
    ];
    expect(chooseInstanceType(types, { vcpus: 4, ramMiB: 8192, iops: 1000, licences: [] }).name).toBe('big');
    expect(chooseInstanceType(types, { vcpus: 4, ramMiB: 8192, iops: 1000, licences: ['per-core:oracle'] }).name).toBe('small');
    expect(() => chooseInstanceType(types, { vcpus: 64, ramMiB: 1, iops: 0, licences: [] })).toThrow(/no instance type offers 64 vCPU/);
  });

  it('places a container on the framework with the largest idle-to-busy ratio that has room', () => {
    const fw = (id: string, idle: number, busy: number, free = 8) => ({ id, hostId: 'i', kind: 'system' as const, idleContainers: idle, busyContainers: busy, freeVcpus: free, freeRamMiB: 8192 });
    expect(chooseFramework([fw('a', 1, 4), fw('b', 3, 1), fw('c', 5, 0, 1)], { vcpus: 2, ramMiB: 1024 })!.id).toBe('b');
    expect(chooseFramework([fw('a', 1, 4), fw('d', 2, 0)], { vcpus: 2, ramMiB: 1024 })!.id).toBe('d');
    expect(chooseFramework([fw('c', 5, 0, 1)], { vcpus: 2, ramMiB: 1024 })).toBeUndefined();
  });
});
