import type blessed from 'blessed';
import { startTicker as realTicker, wallMs, type Ticker } from '../src/world/live-ticker.js';
import type { Frame, Playback } from './frame.js';
import type { Source } from './source.js';
import { fmtSpeed } from './text.js';
import { initialViewState, reduceKey, type Command, type ViewState } from './view-state.js';
import { TuiView } from './view.js';

/** Virtual seconds per real second that + and - step through. */
export const SPEEDS = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400] as const;
export const DEFAULT_SPEED = 60;

/** Real time, injectable so tests drive frames by hand. */
export interface RealClock {
  nowMs(): number;
  startTicker(intervalMs: number, onTick: (nowMs: number) => void): Ticker;
}

export const realClock: RealClock = { nowMs: wallMs, startTicker: realTicker };

export interface AppOptions {
  screen: blessed.Widgets.Screen;
  source: Source;
  speed?: number;
  /** A standing warning to show (a trace cut short). */
  warning?: string | null;
  /** Real milliseconds between frames. */
  frameMs?: number;
  clock?: RealClock;
  /** Longest real gap one frame may cover: after a stall, the pace does not jump. */
  maxFrameGapMs?: number;
}

/**
 * The controller: paces a source in real time, turns keys into view-state
 * changes and commands, and hands the view a Frame to draw. The only place
 * that knows about all three of source, model and view.
 */
export class TuiApp {
  readonly view: TuiView;
  private state: ViewState = initialViewState;
  private paused = false;
  private speed: number;
  private message: string | null = null;
  private messageUntilMs = 0;
  private lastMs: number;
  private advancing = false;
  private ticker: Ticker | null = null;
  private lastDrawn: Frame | null = null;
  private settle: { resolve: () => void; reject: (err: unknown) => void } | null = null;
  private readonly clock: RealClock;
  private readonly onKeypress = (ch: string | undefined, key: { full?: string } | undefined): void => {
    try {
      this.key({ full: key?.full ?? ch ?? '', ch });
    } catch (err) {
      this.fail(err);
    }
  };

  constructor(private readonly options: AppOptions) {
    this.view = new TuiView(options.screen);
    this.clock = options.clock ?? realClock;
    this.speed = options.speed ?? DEFAULT_SPEED;
    this.lastMs = this.clock.nowMs();
  }

  get viewState(): ViewState {
    return this.state;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get currentSpeed(): number {
    return this.speed;
  }

  /** Draw and play until the user quits (resolves) or something fails (rejects). Widgets are torn down either way. */
  async run(): Promise<void> {
    const { screen } = this.options;
    const done = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    screen.on('keypress', this.onKeypress);
    try {
      this.draw(true);
      this.lastMs = this.clock.nowMs();
      this.ticker = this.clock.startTicker(this.options.frameMs ?? 100, (now) => void this.tick(now));
      await done;
    } finally {
      this.ticker?.stop();
      this.ticker = null;
      screen.removeListener('keypress', this.onKeypress);
      this.view.destroy();
      this.options.source.close();
    }
  }

  /** One frame: advance the source by real time elapsed × speed, then redraw if anything changed. */
  async tick(nowMs: number): Promise<void> {
    const gap = Math.min(Math.max(0, nowMs - this.lastMs), this.options.maxFrameGapMs ?? 250);
    this.lastMs = nowMs;
    const source = this.options.source;
    try {
      if (!this.paused && !source.done && !this.advancing) {
        this.advancing = true;
        try {
          await source.advance(Math.round(gap * 1000 * this.speed));
        } finally {
          this.advancing = false;
        }
        if (source.done && source.kind === 'replay') this.note('end of trace: space plays again from the start, [ seeks back');
      }
      if (this.message && nowMs >= this.messageUntilMs) this.message = null;
      this.draw();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Apply one key (exposed for tests; the screen's keypress events land here). */
  key(key: { full: string; ch?: string | undefined }): void {
    const source = this.options.source;
    const { state, command } = reduceKey(this.state, key, source.model.snapshot(this.state.detailVm));
    this.state = state;
    if (command) this.command(command);
    this.draw(true);
  }

  private command(command: Command): void {
    const source = this.options.source;
    switch (command) {
      case 'quit':
        this.settle?.resolve();
        return;
      case 'toggle-pause':
        if (source.done && source.kind === 'replay') {
          source.seek(0);
          this.paused = false;
        } else {
          this.paused = !this.paused;
        }
        this.lastMs = this.clock.nowMs();
        return;
      case 'faster':
      case 'slower': {
        const i = SPEEDS.findIndex((s) => s >= this.speed);
        const at = i < 0 ? SPEEDS.length - 1 : i;
        const next = command === 'faster' ? SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS[at] === this.speed ? at + 1 : at)]! : SPEEDS[Math.max(0, at - 1)]!;
        this.speed = next;
        this.note(`speed ${fmtSpeed(next)} (virtual seconds per real second)`);
        return;
      }
      case 'step-back':
      case 'step-forward':
      case 'seek-back':
      case 'seek-forward': {
        if (!source.canSeek) {
          this.note('this source cannot step or seek');
          return;
        }
        if (command === 'step-back' || command === 'step-forward') {
          this.paused = true;
          source.step(command === 'step-back' ? -1 : 1);
          return;
        }
        const span = Math.max(1_000_000, Math.round((source.endUs ?? source.positionUs) * 0.05));
        source.seek(source.positionUs + (command === 'seek-back' ? -span : span));
        return;
      }
    }
  }

  private note(text: string): void {
    this.message = text;
    this.messageUntilMs = this.clock.nowMs() + 3000;
  }

  frame(): Frame {
    const source = this.options.source;
    const playback: Playback = {
      kind: source.kind, paused: this.paused, speed: this.speed, positionUs: source.positionUs, endUs: source.endUs, done: source.done, canSeek: source.canSeek,
      reviewing: source.reviewing ?? false,
    };
    return { snap: source.model.snapshot(this.state.detailVm), view: this.state, playback, message: this.message, warning: this.options.warning ?? null };
  }

  private draw(force = false): void {
    const frame = this.frame();
    const prev = this.lastDrawn;
    const same = prev && !force && prev.snap === frame.snap && prev.view === frame.view && prev.message === frame.message &&
      prev.playback.paused === frame.playback.paused && prev.playback.speed === frame.playback.speed &&
      prev.playback.positionUs === frame.playback.positionUs && prev.playback.done === frame.playback.done &&
      prev.playback.reviewing === frame.playback.reviewing;
    if (same) return;
    this.view.render(frame);
    this.lastDrawn = frame;
  }

  private fail(err: unknown): void {
    if (this.settle) this.settle.reject(err);
    else throw err;
  }
}
