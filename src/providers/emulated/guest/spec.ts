import { fail, join, known, num, obj, size, str, type Raw } from '../../../util/check.js';
import { BOOT_PROFILE_PRESETS, DEFAULT_BOOT_PROFILE, type BootProfileSpec } from './boot-profile.js';
import { DEFAULT_MIX, assertMixSums, normalizeMix, type ContentMix } from './content.js';
import { APP_ROLES, type AppRole } from './file-view.js';

/**
 * Scenario parsers for an image's guest content (docs/guest.md). Errors name
 * the field path and what is allowed; nothing is mutated.
 *
 *   content: { zeros: 0.5, random: 0.35, repeated: 0.07, text: 0.06, pool: rhel, unique: 0.02 }
 *   bootProfile: { files: 150, reads: 2000 }      # or a preset: default | minimal | heavy
 */

export interface ContentSpec {
  mix: ContentMix;
  /** Images naming the same pool share repeated blocks (default "common"). */
  poolId?: string;
  /** Fraction of data regions unique to each disk cloned from the image. */
  uniqueFraction: number;
  /**
   * Pins the image's bytes, file tree and boot profile to this seed instead
   * of the run's: a seed sweep then varies the run, not the golden image.
   */
  seed?: number;
}

const MIX_KEYS = ['zeros', 'random', 'repeated', 'text'] as const;

export function parseContentSpec(raw: unknown, path = 'content'): ContentSpec {
  if (raw === undefined || raw === null) return { mix: DEFAULT_MIX, uniqueFraction: 0 };
  const o = obj(raw, path);
  known(o, path, [...MIX_KEYS, 'pool', 'unique', 'seed']);
  const given = MIX_KEYS.filter((k) => o[k] !== undefined);
  // With no fractions given the default mix applies; with some, the missing ones are 0.
  const mix: ContentMix = given.length === 0
    ? DEFAULT_MIX
    : {
        zeros: num(o, 'zeros', path, { default: 0, min: 0, max: 1 }),
        random: num(o, 'random', path, { default: 0, min: 0, max: 1 }),
        repeated: num(o, 'repeated', path, { default: 0, min: 0, max: 1 }),
        text: num(o, 'text', path, { default: 0, min: 0, max: 1 }),
      };
  assertMixSums(mix, path);
  const spec: ContentSpec = {
    mix: normalizeMix(mix),
    uniqueFraction: num(o, 'unique', path, { default: 0, min: 0, max: 1 }),
  };
  if (o.pool !== undefined) spec.poolId = str(o, 'pool', path, { pattern: /^[\w.-]+$/ });
  if (o.seed !== undefined) spec.seed = num(o, 'seed', path, { min: 0, max: 2 ** 32 - 1, integer: true });
  return spec;
}

export function parseBootProfileSpec(raw: unknown, path = 'bootProfile'): BootProfileSpec {
  if (raw === undefined || raw === null) return DEFAULT_BOOT_PROFILE;
  if (typeof raw === 'string') {
    const preset = BOOT_PROFILE_PRESETS[raw];
    if (!preset) fail(path, `a preset (${Object.keys(BOOT_PROFILE_PRESETS).join(', ')}) or a mapping { files, reads, minRead, maxRead }`, raw);
    return preset;
  }
  const o = obj(raw, path);
  known(o, path, ['files', 'reads', 'minRead', 'maxRead']);
  const spec: BootProfileSpec = {
    files: num(o, 'files', path, { default: DEFAULT_BOOT_PROFILE.files, min: 1, max: 100_000, integer: true }),
    reads: num(o, 'reads', path, { default: DEFAULT_BOOT_PROFILE.reads, min: 1, max: 10_000_000, integer: true }),
    minReadBytes: size(o, 'minRead', path, DEFAULT_BOOT_PROFILE.minReadBytes),
    maxReadBytes: size(o, 'maxRead', path, DEFAULT_BOOT_PROFILE.maxReadBytes),
  };
  for (const key of ['minRead', 'maxRead'] as const) {
    const v = key === 'minRead' ? spec.minReadBytes : spec.maxReadBytes;
    if (v < 4096 || v % 4096 !== 0 || v > 16 * 1024 * 1024) fail(join(path, key), 'a multiple of 4KiB between 4KiB and 16MiB', o[key]);
  }
  if (spec.minReadBytes > spec.maxReadBytes) fail(join(path, 'minRead'), `a size no larger than maxRead (${spec.maxReadBytes} bytes)`, o.minRead);
  if (spec.reads < spec.files) fail(join(path, 'reads'), `at least one read per file (files: ${spec.files})`, spec.reads);
  return spec;
}

export function parseAppRole(o: Raw, key: string, path: string): AppRole {
  return str(o, key, path, { default: 'generic', allowed: APP_ROLES }) as AppRole;
}
