import { z } from 'zod';
import { BOOT_PROFILE_PRESETS, DEFAULT_BOOT_PROFILE, type BootProfileSpec } from '../providers/emulated/guest/boot-profile.js';
import { DEFAULT_MIX, normalizeMix, type ContentMix } from '../providers/emulated/guest/content-mix.js';
import { APP_ROLES } from '../providers/emulated/guest/file-view.js';
import type { ContentSpec } from '../providers/emulated/guest/spec.js';
import { parseSection } from './issues.js';
import { int, mapping, num, oneOf, refuse, refuseExpected, size, text } from './fields.js';

/**
 * An image's guest: its disk content mix, the files it reads at boot and what its file tree is
 * shaped for (docs/guest.md). The guest model reads the result (src/providers/emulated/guest).
 *
 *   content: { zeros: 0.5, random: 0.35, repeated: 0.07, text: 0.06, pool: rhel, unique: 0.02 }
 *   bootProfile: { files: 150, reads: 2000 }      # or a preset: default | minimal | heavy
 */

const fraction = () => num({ min: 0, max: 1 });

export const contentSchema = mapping({
  zeros: fraction().optional().meta({ description: 'fraction of zero blocks (a fraction left out is 0 when any is given)' }),
  random: fraction().optional().meta({ description: 'fraction of incompressible blocks' }),
  repeated: fraction().optional().meta({ description: 'fraction of blocks shared with images of the same pool' }),
  text: fraction().optional().meta({ description: 'fraction of text-like blocks' }),
  pool: text({ pattern: /^[\w.-]+$/ }).optional().meta({ description: 'images naming the same pool share repeated blocks (default "common")' }),
  unique: fraction().default(0).meta({ description: 'fraction of data regions unique to each disk cloned from the image' }),
  seed: int({ min: 0, max: 2 ** 32 - 1 }).optional().meta({ description: "pins the image's bytes, files and boot profile to this seed instead of the run's" }),
}).optional().transform((o, ctx): ContentSpec => {
  // No section: the default mix as it is. A section: the fractions given (the others 0), or
  // the default mix when it gives none, normalized.
  if (o === undefined) return { mix: DEFAULT_MIX, uniqueFraction: 0 };
  const given = o.zeros !== undefined || o.random !== undefined || o.repeated !== undefined || o.text !== undefined;
  const mix: ContentMix = given ? { zeros: o.zeros ?? 0, random: o.random ?? 0, repeated: o.repeated ?? 0, text: o.text ?? 0 } : DEFAULT_MIX;
  const sum = mix.zeros + mix.random + mix.repeated + mix.text;
  if (Math.abs(sum - 1) > 0.05) return refuse(ctx, o, `the fractions zeros + random + repeated + text must add up to about 1, got ${Number(sum.toFixed(4))}`);
  const spec: ContentSpec = { mix: normalizeMix(mix), uniqueFraction: o.unique };
  if (o.pool !== undefined) spec.poolId = o.pool;
  if (o.seed !== undefined) spec.seed = o.seed;
  return spec;
}).meta({ description: 'generated disk content: fractions of zeros, random, repeated and text blocks (summing to 1)' });

const readSize = (fallback: number) =>
  size({ check: (v) => (v < 4096 || v % 4096 !== 0 || v > 16 * 1024 * 1024 ? 'a multiple of 4KiB between 4KiB and 16MiB' : null) }).prefault(fallback);

const PRESETS = Object.keys(BOOT_PROFILE_PRESETS) as [string, ...string[]];

export const bootProfileSchema = z.union([
  oneOf(PRESETS),
  mapping({
    files: int({ min: 1, max: 100_000 }).default(DEFAULT_BOOT_PROFILE.files).meta({ description: 'files read at boot' }),
    reads: int({ min: 1, max: 10_000_000 }).default(DEFAULT_BOOT_PROFILE.reads).meta({ description: 'block reads at boot (at least one per file)' }),
    minRead: readSize(DEFAULT_BOOT_PROFILE.minReadBytes),
    maxRead: readSize(DEFAULT_BOOT_PROFILE.maxReadBytes),
  }),
], { error: (iss) => `expected a preset (${PRESETS.join(', ')}) or a mapping { files, reads, minRead, maxRead }, got ${JSON.stringify(iss.input) ?? 'nothing'}` })
  .optional()
  .transform((v, ctx): BootProfileSpec => {
    if (v === undefined) return DEFAULT_BOOT_PROFILE;
    if (typeof v === 'string') return BOOT_PROFILE_PRESETS[v]!;
    const spec = { files: v.files, reads: v.reads, minReadBytes: v.minRead, maxReadBytes: v.maxRead };
    if (spec.minReadBytes > spec.maxReadBytes) return refuseExpected(ctx, v.minRead, `a size no larger than maxRead (${spec.maxReadBytes} bytes)`, ['minRead']);
    if (spec.reads < spec.files) return refuseExpected(ctx, spec.reads, `at least one read per file (files: ${spec.files})`, ['reads']);
    return spec;
  })
  .meta({ description: 'files read at boot, in order: a preset or { files, reads, minRead, maxRead }' });

export const appSchema = oneOf(APP_ROLES as unknown as readonly ['database', 'web', 'batch', 'generic']).default('generic')
  .meta({ description: 'what the guest file tree is shaped for' });

/** An image's `content:` as the content generator takes it (tests build guests from text). */
export function parseContentSpec(raw: unknown, path = 'content'): ContentSpec {
  return parseSection(contentSchema, raw, path);
}

/** An image's `bootProfile:` as the guest model takes it. */
export function parseBootProfileSpec(raw: unknown, path = 'bootProfile'): BootProfileSpec {
  return parseSection(bootProfileSchema, raw, path);
}
