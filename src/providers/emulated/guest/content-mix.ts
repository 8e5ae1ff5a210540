import { invariant } from '../../../errors.js';

/** The kinds of generated content and a mix of them (shared by image-content.ts and file-content.ts). */

export type ContentKind = 'zero' | 'random' | 'repeated' | 'text';
export const CONTENT_KINDS: readonly ContentKind[] = ['zero', 'random', 'repeated', 'text'];

/** Fractions of the disk's regions of each kind (weights; normalized to sum 1). */
export interface ContentMix {
  zeros: number;
  random: number;
  repeated: number;
  text: number;
}

/** The proxy benchmark's mix: about half empty, a third incompressible, some duplicates and text. */
export const DEFAULT_MIX: ContentMix = { zeros: 0.5, random: 0.35, repeated: 0.07, text: 0.06 };

export function normalizeMix(mix: ContentMix): ContentMix {
  const sum = mix.zeros + mix.random + mix.repeated + mix.text;
  invariant(
    [mix.zeros, mix.random, mix.repeated, mix.text].every((x) => Number.isFinite(x) && x >= 0) && sum > 0,
    () => `a content mix needs non-negative fractions with a positive sum, got ${JSON.stringify(mix)}`,
  );
  return { zeros: mix.zeros / sum, random: mix.random / sum, repeated: mix.repeated / sum, text: mix.text / sum };
}
