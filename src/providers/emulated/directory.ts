import { createHash } from 'node:crypto';
import { SpillwayError } from '../../errors.js';
import type { Directory } from '../../ports/directory.js';
import type { Hypervisor } from '../../ports/hypervisor.js';
import { US_PER_S } from '../../util/units.js';
import type { World } from '../../world/types.js';

/**
 * An emulated directory service (an AD/LDAP domain controller) on the World
 * clock. Each domain holds machine accounts keyed by name (case-insensitive,
 * as NetBIOS/AD names are); an account pins its machine id by fingerprint
 * when it is created (seed 001: the representation kept at provisioning is
 * what later connections are checked against). A clone must come with a new
 * name and a new id (FIG 12 step 1211) before it can join: a second machine
 * with a taken name or a taken id is refused with a stable code.
 *
 * Calls are idempotent the way the machines need them: joining again with the
 * same name and id is a no-op (a step re-run after a restart), leaving an
 * account that is not there is a no-op.
 */

export interface DirectoryLatencies {
  joinUs: number;
  leaveUs: number;
  authenticateUs: number;
}

export const DEFAULT_DIRECTORY_LATENCIES: Readonly<DirectoryLatencies> = {
  joinUs: 2 * US_PER_S,
  leaveUs: 1 * US_PER_S,
  authenticateUs: 20_000,
};

export interface MachineAccount {
  domain: string;
  machineName: string;
  machineId: string;
  /** sha256 of the machine id: the pinned identity later authentications are compared with. */
  fingerprint: string;
  joinedAtUs: number;
}

/** A directory refusal; `retryable` tells the machines' step pattern whether to back off and try again. */
export class DirectoryError extends SpillwayError {
  constructor(code: string, message: string, readonly retryable: boolean, details?: Record<string, unknown>) {
    super(code, message, details ? { details } : {});
  }
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MACHINE_ID = /^[\w-]{1,128}$/;

export const fingerprintOf = (machineId: string): string => createHash('sha256').update(machineId).digest('hex');

export class EmulatedDirectory implements Directory {
  readonly latencies: DirectoryLatencies;
  private readonly domains = new Map<string, Map<string, MachineAccount>>();
  private readonly jitter;
  private readonly jitterFraction: number;
  private unavailableUntilUs = -1;

  constructor(private readonly world: World, options: { domains: string[]; latencies?: Partial<DirectoryLatencies>; jitterFraction?: number }) {
    this.latencies = { ...DEFAULT_DIRECTORY_LATENCIES, ...options.latencies };
    for (const [k, v] of Object.entries(this.latencies)) {
      if (!Number.isInteger(v) || v < 0) throw new SpillwayError('E_BAD_CONFIG', `directory latencies.${k}: expected a non-negative integer of microseconds, got ${v}`);
    }
    this.jitterFraction = options.jitterFraction ?? 0.1;
    if (!(this.jitterFraction >= 0 && this.jitterFraction < 1)) throw new SpillwayError('E_BAD_CONFIG', `directory jitterFraction: expected a number in [0, 1), got ${this.jitterFraction}`);
    if (options.domains.length === 0) throw new SpillwayError('E_BAD_CONFIG', 'directory domains: expected at least one domain name');
    for (const d of options.domains) {
      const key = d.toLowerCase();
      if (this.domains.has(key)) throw new SpillwayError('E_BAD_CONFIG', `directory domains: ${d} is listed twice`);
      this.domains.set(key, new Map());
    }
    this.jitter = world.rng('directory/latency');
  }

  /**
   * Enrol, at once, every VM of `hypervisor` whose guest says it is domain
   * joined (the data center as it is when the run begins), so a clone that
   * kept its source's name or id is refused like on a real domain.
   */
  enrolFrom(hypervisor: Hypervisor): number {
    let n = 0;
    for (const vm of hypervisor.vms()) {
      const { identity, network } = vm.guest;
      if (!identity.domainJoined || !this.domains.has(network.domain.toLowerCase())) continue;
      this.admit({ machineName: identity.machineName, machineId: identity.machineId, domain: network.domain });
      n++;
    }
    return n;
  }

  /** Calls fail with the retryable E_DIR_UNAVAILABLE for `forUs` from now (a domain controller outage). */
  outage(forUs: number): void {
    if (!Number.isInteger(forUs) || forUs <= 0) throw new SpillwayError('E_BAD_CONFIG', `directory outage: expected a positive integer of microseconds, got ${forUs}`);
    this.unavailableUntilUs = Math.max(this.unavailableUntilUs, this.world.clock.nowUs() + forUs);
    this.world.trace.emit('directory', 'directory.outage', { forUs });
  }

  async join(req: { machineName: string; machineId: string; domain: string }): Promise<void> {
    const accounts = this.domainOf(req.domain);
    checkIdentity(req);
    await this.wait(this.latencies.joinUs);
    this.checkAvailable('join');
    const existing = accounts.get(req.machineName.toLowerCase());
    if (existing && existing.machineId === req.machineId) {
      this.world.trace.emit(`directory/${req.domain.toLowerCase()}`, 'directory.join', { machine: req.machineName, ok: true, already: true });
      return;
    }
    try {
      this.admit(req);
    } catch (err) {
      this.world.trace.emit(`directory/${req.domain.toLowerCase()}`, 'directory.join', { machine: req.machineName, ok: false, code: (err as SpillwayError).code });
      throw err;
    }
    this.world.trace.emit(`directory/${req.domain.toLowerCase()}`, 'directory.join', { machine: req.machineName, ok: true, already: false });
  }

  async leave(req: { machineName: string; domain: string }): Promise<void> {
    const accounts = this.domainOf(req.domain);
    await this.wait(this.latencies.leaveUs);
    this.checkAvailable('leave');
    const removed = accounts.delete(req.machineName.toLowerCase());
    this.world.trace.emit(`directory/${req.domain.toLowerCase()}`, 'directory.leave', { machine: req.machineName, removed });
  }

  /** Seed 001: the machine presents its id; it is who it says only if the fingerprint pinned at join matches. */
  async authenticate(req: { machineName: string; machineId: string; domain: string }): Promise<boolean> {
    const accounts = this.domainOf(req.domain);
    await this.wait(this.latencies.authenticateUs);
    this.checkAvailable('authenticate');
    const acct = accounts.get(req.machineName.toLowerCase());
    return acct !== undefined && acct.fingerprint === fingerprintOf(req.machineId);
  }

  account(domain: string, machineName: string): MachineAccount | undefined {
    const a = this.domainOf(domain).get(machineName.toLowerCase());
    return a ? { ...a } : undefined;
  }

  accounts(domain: string): MachineAccount[] {
    return [...this.domainOf(domain).values()].map((a) => ({ ...a })).sort((a, b) => a.machineName.localeCompare(b.machineName));
  }

  private admit(req: { machineName: string; machineId: string; domain: string }): void {
    checkIdentity(req);
    const accounts = this.domainOf(req.domain);
    const byName = accounts.get(req.machineName.toLowerCase());
    if (byName && byName.machineId !== req.machineId) {
      throw new DirectoryError('E_DIR_NAME_TAKEN', `domain ${req.domain}: machine name ${req.machineName} belongs to another machine (a clone needs a new name)`, false,
        { domain: req.domain, machineName: req.machineName });
    }
    for (const a of accounts.values()) {
      if (a.machineId === req.machineId && a.machineName.toLowerCase() !== req.machineName.toLowerCase()) {
        throw new DirectoryError('E_DIR_ID_TAKEN', `domain ${req.domain}: machine id of ${req.machineName} is already the id of ${a.machineName} (a clone needs a new machine id)`, false,
          { domain: req.domain, machineName: req.machineName, holder: a.machineName });
      }
    }
    accounts.set(req.machineName.toLowerCase(), {
      domain: req.domain.toLowerCase(), machineName: req.machineName, machineId: req.machineId,
      fingerprint: fingerprintOf(req.machineId), joinedAtUs: this.world.clock.nowUs(),
    });
  }

  private domainOf(domain: string): Map<string, MachineAccount> {
    const d = this.domains.get(domain.toLowerCase());
    if (!d) throw new DirectoryError('E_DIR_NO_DOMAIN', `no domain ${domain}; the directory serves ${[...this.domains.keys()].join(', ')}`, false, { domain });
    return d;
  }

  private async wait(meanUs: number): Promise<void> {
    const f = this.jitterFraction;
    await this.world.clock.sleepUs(f === 0 ? meanUs : Math.round(meanUs * this.jitter.range(1 - f, 1 + f)));
  }

  private checkAvailable(op: string): void {
    if (this.world.clock.nowUs() < this.unavailableUntilUs) {
      throw new DirectoryError('E_DIR_UNAVAILABLE', `directory ${op}: no domain controller answers (outage until ${this.unavailableUntilUs}us)`, true);
    }
  }
}

function checkIdentity(req: { machineName: string; machineId: string }): void {
  if (typeof req.machineName !== 'string' || !NAME.test(req.machineName)) {
    throw new DirectoryError('E_DIR_BAD_NAME', `machineName: expected 1-63 letters, digits and inner hyphens, got ${JSON.stringify(req.machineName)}`, false);
  }
  if (typeof req.machineId !== 'string' || !MACHINE_ID.test(req.machineId)) {
    throw new DirectoryError('E_DIR_BAD_ID', `machineId: expected 1-128 letters, digits, _ or -, got ${JSON.stringify(req.machineId)}`, false);
  }
}
