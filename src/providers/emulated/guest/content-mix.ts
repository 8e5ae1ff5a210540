/** The kinds of generated content and a mix of them (shared by content.ts and file-content.ts). */

export type ContentKind = 'zero' | 'random' | 'repeated' | 'text';
export const CONTENT_KINDS: readonly ContentKind[] = ['zero', 'random', 'repeated', 'text'];

/** Fractions of the disk's regions of each kind (weights; normalized to sum 1). */
export interface ContentMix {
  zeros: number;
  random: number;
  repeated: number;
  text: number;
}
