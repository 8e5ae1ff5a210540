import type { TuiModel } from './model.js';

/**
 * Where events come from: a recorded trace (seekable) or a running
 * simulation (forward only). The controller paces a source; the source feeds
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
  /** Move virtual time forward by `deltaUs`. */
  advance(deltaUs: number): Promise<void>;
  /** Jump to the previous or next instant at which something happened (replay only). */
  step(direction: -1 | 1): void;
  /** Jump to `timeUs` (replay only). */
  seek(timeUs: number): void;
  close(): void;
}
