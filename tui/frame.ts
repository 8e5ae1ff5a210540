import type { Snapshot } from './snapshot.js';
import type { ViewState } from './view-state.js';

/** Pace and position: owned by the controller, shown by the view. */
export interface Playback {
  readonly kind: 'live' | 'replay';
  readonly paused: boolean;
  /** Virtual seconds per real second. */
  readonly speed: number;
  readonly positionUs: number;
  /** Last instant of the trace or scenario, when known. */
  readonly endUs: number | null;
  readonly done: boolean;
  readonly canSeek: boolean;
  /** Live, but showing the recorded past (the simulation waits). */
  readonly reviewing: boolean;
}

/** Everything one redraw needs. A view renders a Frame and nothing else. */
export interface Frame {
  readonly snap: Snapshot;
  readonly view: ViewState;
  readonly playback: Playback;
  /** A transient note (e.g. "seek works in replay only"). */
  readonly message: string | null;
  /** A standing warning (e.g. a trace cut short). */
  readonly warning: string | null;
}
