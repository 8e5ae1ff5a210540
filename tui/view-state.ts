import type { LogEntry, Snapshot, VmView } from './snapshot.js';

/** Panels that can hold focus, in tab order. */
export const FOCUSABLE = ['vms', 'log', 'hosts', 'instances'] as const;
export type Focus = (typeof FOCUSABLE)[number];

export type Mode = 'main' | 'detail' | 'help';

/**
 * What the user is looking at, separate from what happened (the model). The
 * controller owns one of these and updates it only through `reduceKey`, so
 * every key's effect is testable without a terminal.
 */
export interface ViewState {
  readonly mode: Mode;
  /** The mode to go back to when help closes. */
  readonly underHelp: Mode;
  readonly focus: Focus;
  readonly filter: string;
  readonly editingFilter: boolean;
  readonly filterDraft: string;
  /** Selected VM by name, so the selection survives rows moving. */
  readonly selectedVm: string | null;
  /** Lines scrolled back from the newest log entry (0 follows the tail). */
  readonly logScroll: number;
  /** First host / instance row shown (when there are more than fit). */
  readonly hostsScroll: number;
  readonly instancesScroll: number;
  /** The VM whose detail is open. */
  readonly detailVm: string | null;
}

export const initialViewState: ViewState = Object.freeze({
  mode: 'main', underHelp: 'main', focus: 'vms', filter: '', editingFilter: false, filterDraft: '', selectedVm: null, logScroll: 0, hostsScroll: 0, instancesScroll: 0, detailVm: null,
});

/** Commands a key asks of the controller (pace and position are not view state). */
export type Command = 'quit' | 'toggle-pause' | 'faster' | 'slower' | 'step-back' | 'step-forward' | 'seek-back' | 'seek-forward';

function terms(filter: string): string[] {
  return filter.toLowerCase().split(/\s+/).filter((t) => t.length > 0);
}

/** Every space-separated term must appear in one of the row's fields (case-insensitive). */
export function filterVms(vms: readonly VmView[], filter: string): readonly VmView[] {
  const ts = terms(filter);
  if (ts.length === 0) return vms;
  return vms.filter((vm) => {
    const hay = [vm.name, vm.where, vm.host ?? '', vm.instance ?? '', vm.instanceType ?? '', vm.machine ?? '', vm.state ?? '', vm.power ?? '', vm.error ?? '']
      .join(' ').toLowerCase();
    return ts.every((t) => hay.includes(t));
  });
}

export function filterLog(log: readonly LogEntry[], filter: string): readonly LogEntry[] {
  const ts = terms(filter);
  if (ts.length === 0) return log;
  return log.filter((e) => {
    const hay = `${e.src} ${e.type} ${e.text}`.toLowerCase();
    return ts.every((t) => hay.includes(t));
  });
}

/** The selected VM if it is still visible, else the first visible one. */
export function effectiveSelection(state: ViewState, visible: readonly VmView[]): string | null {
  if (state.selectedVm !== null && visible.some((v) => v.name === state.selectedVm)) return state.selectedVm;
  return visible[0]?.name ?? null;
}

export interface KeyResult {
  state: ViewState;
  command: Command | null;
}

/**
 * A key as blessed reports it: `full` is e.g. "space", "enter", "S-tab", "C-c"; `ch` the printable character.
 * blessed reports a carriage return twice ("enter", then "return"): only "enter" acts.
 */
export interface Key {
  full: string;
  ch?: string | undefined;
}

const PAGE = 10;

/**
 * The effect of one key. Pure: it reads the snapshot only to move the
 * selection among visible rows.
 */
export function reduceKey(state: ViewState, key: Key, snap: Snapshot): KeyResult {
  const k = key.full;
  const same = (s: ViewState = state, command: Command | null = null): KeyResult => ({ state: s, command });
  if (k === 'C-c') return same(state, 'quit');

  if (state.editingFilter) {
    if (k === 'enter') return same({ ...state, editingFilter: false, filter: state.filterDraft.trim() });
    if (k === 'escape') return same({ ...state, editingFilter: false, filterDraft: state.filter });
    if (k === 'backspace') return same({ ...state, filterDraft: [...state.filterDraft].slice(0, -1).join('') });
    if (k === 'C-u') return same({ ...state, filterDraft: '' });
    const ch = key.ch;
    if (ch !== undefined && ch.length > 0 && !/[\u0000-\u001f\u007f]/.test(ch) && state.filterDraft.length < 60) {
      return same({ ...state, filterDraft: state.filterDraft + ch });
    }
    return same();
  }

  if (state.mode === 'help') {
    if (k === 'q') return same(state, 'quit');
    // Any other key closes help; it never leaks through to act on the view below.
    return same({ ...state, mode: state.underHelp });
  }

  switch (k) {
    case 'q': return same(state, 'quit');
    case '?': return same({ ...state, mode: 'help', underHelp: state.mode });
    case 'space': return same(state, 'toggle-pause');
    case '+': case '=': return same(state, 'faster');
    case '-': case '_': return same(state, 'slower');
    case 'left': return same(state, 'step-back');
    case 'right': return same(state, 'step-forward');
    case '[': return same(state, 'seek-back');
    case ']': return same(state, 'seek-forward');
    case '/': return same({ ...state, editingFilter: true, filterDraft: state.filter });
    case 'escape':
      if (state.mode === 'detail') return same({ ...state, mode: 'main', detailVm: null });
      if (state.filter !== '') return same({ ...state, filter: '', filterDraft: '' });
      return same();
    case 'tab': case 'S-tab': {
      if (state.mode !== 'main') return same();
      const i = FOCUSABLE.indexOf(state.focus);
      const next = FOCUSABLE[(i + (k === 'tab' ? 1 : FOCUSABLE.length - 1)) % FOCUSABLE.length]!;
      return same({ ...state, focus: next });
    }
    case 'enter': {
      if (state.mode !== 'main') return same();
      const sel = effectiveSelection(state, filterVms(snap.vms, state.filter));
      return sel === null ? same() : same({ ...state, mode: 'detail', detailVm: sel, selectedVm: sel });
    }
    case 'up': case 'k': case 'down': case 'j': case 'pageup': case 'pagedown': case 'home': case 'g': case 'end': case 'S-g': case 'G': {
      const delta = k === 'up' || k === 'k' ? -1 : k === 'down' || k === 'j' ? 1 : k === 'pageup' ? -PAGE : k === 'pagedown' ? PAGE
        : k === 'home' || k === 'g' ? -Infinity : Infinity;
      if (state.mode !== 'main') return same();
      if (state.focus === 'log') {
        const max = Math.max(0, filterLog(snap.log, state.filter).length - 1);
        const scroll = Math.max(0, Math.min(max, state.logScroll - (Number.isFinite(delta) ? delta : Math.sign(delta) * max)));
        return same({ ...state, logScroll: scroll });
      }
      if (state.focus === 'hosts' || state.focus === 'instances') {
        const key = state.focus === 'hosts' ? 'hostsScroll' : 'instancesScroll';
        const max = Math.max(0, (state.focus === 'hosts' ? snap.hosts.length : snap.instances.length) - 1);
        const next = Number.isFinite(delta) ? state[key] + delta : delta < 0 ? 0 : max;
        return same({ ...state, [key]: Math.max(0, Math.min(max, next)) });
      }
      const visible = filterVms(snap.vms, state.filter);
      if (visible.length === 0) return same();
      const cur = visible.findIndex((v) => v.name === effectiveSelection(state, visible));
      const next = Math.max(0, Math.min(visible.length - 1, Number.isFinite(delta) ? cur + delta : delta < 0 ? 0 : visible.length - 1));
      return same({ ...state, selectedVm: visible[next]!.name });
    }
    default:
      return same();
  }
}
