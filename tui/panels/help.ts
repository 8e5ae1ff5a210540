import { esc, fit } from '../text.js';

/** The key reference behind `?`. */
export function helpLines(kind: 'live' | 'replay'): string[] {
  const rows: Array<[string, string]> = [
    ['space', 'pause / resume'],
    ['+ / -', 'faster / slower (virtual seconds per real second)'],
    ['← / →', 'step to the previous / next instant with an event (pauses)'],
    ['[ / ]', kind === 'replay' ? 'seek back / forward 5% of the trace' : 'seek back / forward 5% of the run (back = review what was recorded)'],
    ['/', 'filter VMs and events (space-separated terms; enter applies, esc cancels)'],
    ['↑ ↓ j k', 'move the selection / scroll the focused panel'],
    ['enter', 'open the selected VM\'s detail view'],
    ['esc', 'leave the detail view, or clear the filter'],
    ['tab', 'move focus: VMs → events → hosts → instances'],
    ['?', 'this help (any key closes it)'],
    ['q', 'quit and restore the terminal'],
  ];
  return ['{bold}spillway tui — keys{/bold}', '', ...rows.map(([k, v]) => `{cyan-fg}${fit(k, 9)}{/cyan-fg} ${esc(v)}`)];
}
