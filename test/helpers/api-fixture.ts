import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApi, type ApiApp } from '../../src/api/app.js';
import { SimBackend, type SimBackendOptions } from '../../src/api/sim-backend.js';
import { parseScenario } from '../../src/sim/scenario-file.js';
import { ScenarioSimulation } from '../../src/sim/simulation.js';
import { liveHubTimers } from '../../src/world/live-api-server.js';

/** A small data center with a WAN and no controller: the API's flows act on it alone. */
export function apiScenario(duration = '4h'): string {
  return `
name: api-mini
duration: ${duration}
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts: [{ id: "h{1..2}", cpuCores: 16, ramGiB: 64 }]
  images: [{ id: img, size: 2GiB, os: { family: linux, distro: rhel, version: "8.9" }, bootProfile: minimal }]
  vms:
    - { name: "web-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: web }
    - { name: "db-1", image: img, vcpus: 4, ramGiB: 8, workload: db }
workloads:
  web: { kind: database, base: 0.4 }
  db: { kind: database, base: 0.5 }
wan: { rtt: 20ms, bandwidth: 1Gbit }
cloud: { region: us-east-1 }
`;
}

export const TOKEN = 'test-token-0123456789abcdef';

export function tokenFile(token = TOKEN, mode = 0o600): string {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-api-'));
  const path = join(dir, 'token');
  writeFileSync(path, `${token}\n`, { mode });
  return path;
}

export const auth = { authorization: `Bearer ${TOKEN}` };

export interface SimApi {
  sim: ScenarioSimulation;
  backend: SimBackend;
  api: ApiApp;
  close(): Promise<void>;
}

export async function simApi(options: SimBackendOptions & { duration?: string; onTrace?: (line: string) => void } = {}): Promise<SimApi> {
  const sim = new ScenarioSimulation(parseScenario(apiScenario(options.duration), 'api-mini.yaml'), {
    noBaseline: true, ...(options.onTrace ? { onTrace: (_e, line) => options.onTrace!(line) } : {}),
  });
  const backend = new SimBackend(sim, options);
  const api = await buildApi({ backend, token: TOKEN, timers: liveHubTimers, hub: { historyEvents: 5000, keepAliveMs: 60_000 } });
  return {
    sim, backend, api,
    async close() {
      backend.close();
      await api.close();
    },
  };
}

/** Step the simulation until `p` settles (an action waits for the run to reach a boundary). */
export async function stepUntil<T>(sim: ScenarioSimulation, p: Promise<T>, sliceUs = 1_000_000): Promise<T> {
  let settled = false;
  const out = p.finally(() => { settled = true; });
  // Awaited after the loop; until then a rejection must not count as unhandled.
  out.catch(() => undefined);
  for (let i = 0; i < 10_000 && !settled && !sim.done; i++) {
    await sim.step(sim.world.nowUs + sliceUs);
    await new Promise((r) => setImmediate(r));
  }
  return out;
}
