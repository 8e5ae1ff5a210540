/**
 * Global limits of a scenario, checked before anything grows with them: a file, its YAML
 * aliases, its name ranges and its number of samples. Each is far above what the shipped
 * scenarios use (under 6 KB, 40 hosts, 100 VMs, 864 samples) and low enough that validation
 * answers in seconds: placing 10,000 VMs on 1,000 hosts took 9 s under load 30, and the
 * trial placement grows with hosts × VMs (50,000 on 10,000 took 458 s).
 */
export const SCENARIO_LIMITS = {
  /** Bytes of YAML, checked before the file is parsed. */
  fileBytes: 1024 * 1024,
  /** Alias uses (`*name`) in one file. */
  aliases: 100,
  /** Nodes the document holds once every alias is expanded. */
  expandedNodes: 200_000,
  /** Names one `{a..b}` range makes. */
  namesPerRange: 10_000,
  /** Hosts and VMs in the data center, after ranges are expanded. */
  hosts: 1_000,
  vms: 10_000,
  /** Samples (duration / sampleEvery) and load ticks (duration / tickEvery) in one run. */
  samples: 100_000,
  ticks: 1_000_000,
} as const;
