import type { TuiModel } from './model.js';

/**
 * Where events come from: a recorded trace or a running simulation (which
 * can also look back at what it has recorded so far). The controller paces a source; the source feeds
 * its model.
 */
export interface Source {
  readonly kind: 'live' | 'replay';
  /** The model to snapshot; a seek may replace it. */
  readonly model: TuiModel;
  readonly positionUs: number;
  readonly endUs: number | null;
  readonly done: boolean;
  readonly canSeek: boolean;
  /** A live source showing its recorded past instead of the running simulation. */
  readonly reviewing?: boolean;
  /** Move virtual time forward by `deltaUs`. */
  advance(deltaUs: number): Promise<void>;
  /** Jump to the previous or next instant at which something happened (when canSeek). */
  step(direction: -1 | 1): void;
  /** Jump to `timeUs` (when canSeek). */
  seek(timeUs: number): void;
  close(): void;
}
