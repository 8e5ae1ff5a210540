/**
 * A small data center that bursts: two 8-core hosts with steady load near capacity, and four batch
 * jobs at 1h that overload them. `extra` is appended under `policies:` (indented two spaces);
 * `cloud` replaces the cloud section.
 */
export function miniBurstScenario(options: { extra?: string; cloud?: string; duration?: string; io?: string } = {}): string {
  const { extra = '', cloud = 'cloud: { region: us-east-1 }', duration = '8h', io = '{ every: 10m, ops: 8 }' } = options;
  return `
name: mini-burst
duration: ${duration}
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts: [{ id: "h{1..2}", cpuCores: 8, ramGiB: 64 }]
  images: [{ id: img, size: 2GiB, os: { family: linux, distro: rhel, version: "8.9" }, bootProfile: minimal }]
  vms:
    - { name: "app-{1..2}", image: img, vcpus: 8, ramGiB: 8, workload: app }
    - { name: "job-{1..4}", image: img, vcpus: 4, ramGiB: 8, workload: job }
workloads:
  app: { kind: database, base: 0.7 }
  job: { kind: batch, work: 8, start: 1h, parallelism: 1 }
wan: { rtt: 20ms, bandwidth: 1Gbit }
${cloud}
policies:
  burst:
    enabled: true
    trigger: { hostUtilizationAbove: 0.95, for: 10m }
    release: { hostUtilizationBelow: 0.75, for: 30m }
    workloads: [job]
    maxVms: 4
    io: ${io}
${extra}
expect:
  - { id: done, metric: totals.batch.unfinished, op: "==", value: 0 }
`;
}
