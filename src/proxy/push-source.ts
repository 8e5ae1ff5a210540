/**
 * A remote that streams blocks ahead of demand (the link's RemoteDisk): it
 * can be asked to push ranges, keeps what it pushed lately, and knows the
 * order of its profile stream (FIG 21/22). The read path takes it as an
 * explicit capability: a remote without one is only read.
 */
export interface PushSource {
  /** Ask the far end to push the range; resolves once it is queued there. */
  requestPush(offset: number, length: number): Promise<void>;
  /** The range from recently pushed blocks, if every block of it is there (no round trip). */
  peekPushed(offset: number, length: number): Buffer | undefined;
  /** Every block of the range is in the profile stream, due within `aheadBlocks` of what has arrived. */
  pushDueSoon(offset: number, length: number, aheadBlocks: number): boolean;
  /** The profile stream still has blocks to send (explicit pushes queue behind it on the far end). */
  profilePending(): boolean;
  /** The profile stream carries this block (arrived or still to come). */
  inProfile(block: number): boolean;
}

/** A device that may offer a push capability (RemoteDisk offers itself). */
export interface MayPush {
  readonly pushes?: PushSource;
}
