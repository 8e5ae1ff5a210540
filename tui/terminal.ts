import blessed from 'blessed';

export interface ScreenStreams {
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
}

/**
 * A blessed screen configured for this machine: terminal 'xterm' because
 * blessed cannot parse Debian's newer xterm-256color terminfo, no terminfo
 * warnings on stderr, full Unicode for bars and sparklines.
 */
export function openScreen(streams: ScreenStreams = {}): blessed.Widgets.Screen {
  return blessed.screen({
    ...(streams.input ? { input: streams.input } : {}),
    ...(streams.output ? { output: streams.output } : {}),
    terminal: 'xterm',
    warnings: false,
    fullUnicode: true,
    smartCSR: true,
    // Children sit inside their parent's border (charts inside panels).
    autoPadding: true,
    title: 'spillway',
  } as blessed.Widgets.IScreenOptions);
}

/** The screen as text lines (what a user would see), for tests and captures. */
export function screenText(screen: blessed.Widgets.Screen): string[] {
  const lines = (screen as unknown as { lines: Array<Array<[number, string]>> }).lines;
  return lines.map((line) => line.map((cell) => cell[1]).join(''));
}
