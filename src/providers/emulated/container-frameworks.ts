import { SpillwayError } from '../../errors.js';
import type { ContainerManifest } from '../../ports/container-platform.js';

/**
 * The emulated container platform's catalogue (container-platform.ts): the
 * frameworks on each site with the containers placed on them, and the
 * system-container templates each site's registry holds.
 */

export type Site = 'local' | 'remote';

export interface FrameworkDef {
  id: string;
  hostId: string;
  site: Site;
  kind: 'system' | 'application';
  vcpus: number;
  ramMiB: number;
}

export interface TemplateDef {
  family: string;
  distro: string;
  version: string;
  sizeBytes: number;
  /** Sites whose registry already holds the template (default both). */
  sites?: Site[];
}

/** A running container that exists before the run (a FIG 27 source). */
export interface ContainerDef {
  id: string;
  frameworkId: string;
  manifest: ContainerManifest;
  /** Disks behind its storage. */
  diskIds: string[];
  /** vCPUs its workload uses. */
  demandVcpus: number;
}

export const templateName = (t: { family: string; distro: string; version: string }): string => `${t.family}/${t.distro}:${t.version}`;

/** A framework and the containers on it. */
export interface Framework<C> extends FrameworkDef {
  containers: Set<C>;
}

export class FrameworkCatalogue<C> {
  readonly templates: TemplateDef[];
  private readonly byId = new Map<string, Framework<C>>();

  constructor(frameworks: readonly FrameworkDef[], templates: readonly TemplateDef[]) {
    for (const f of frameworks) this.add(f);
    for (const t of templates) {
      if (!(t.sizeBytes > 0)) throw new SpillwayError('E_BAD_CONFIG', `containers templates ${t.distro}:${t.version}: sizeBytes must be positive`);
    }
    this.templates = templates.map((t) => ({ ...t, sites: t.sites ?? ['local', 'remote'] }));
  }

  add(f: FrameworkDef): void {
    if (this.byId.has(f.id)) throw new SpillwayError('E_BAD_CONFIG', `containers frameworks: ${f.id} is defined twice`);
    if (!(Number.isInteger(f.vcpus) && f.vcpus > 0 && f.ramMiB > 0)) throw new SpillwayError('E_BAD_CONFIG', `containers frameworks ${f.id}: vcpus must be a positive integer and ramMiB positive`);
    this.byId.set(f.id, { ...f, containers: new Set() });
  }

  /** The framework `id`, or undefined. */
  find(id: string): Framework<C> | undefined {
    return this.byId.get(id);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  at(site: Site): Array<Framework<C>> {
    return [...this.byId.values()].filter((f) => f.site === site);
  }

  /** The template a manifest names (`family/distro:version`), if the catalogue has it. */
  templateNamed(name: string): TemplateDef | undefined {
    return this.templates.find((t) => templateName(t) === name);
  }
}
