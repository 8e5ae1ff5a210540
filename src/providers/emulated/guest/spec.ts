import type { ContentMix } from './content-mix.js';

/**
 * An image's guest content as the content generator takes it (docs/guest.md). The scenario
 * format declares the text it comes from (src/scenario/guest.ts).
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
