import type { Snapshot, VmView } from '../snapshot.js';
import type { ViewState } from '../view-state.js';
import { effectiveSelection, filterVms } from '../view-state.js';
import { color, esc, fit, fmtAge, fmtRate } from '../text.js';

interface Column {
  title: string;
  width: number;
  align: 'left' | 'right';
  cell: (vm: VmView, nowUs: number) => string;
}

function stateText(vm: VmView): string {
  const base = vm.machine === null ? vm.power ?? '—' : `${vm.machine}:${vm.state ?? '?'}`;
  const p = vm.progress;
  return p && p.total > 0 ? `${base} · task ${Math.floor((p.done / p.total) * 100)}%` : base;
}

function whereText(vm: VmView): string {
  return vm.where === 'cloud' ? 'cloud' : vm.where === 'onprem' ? 'onprem' : '?';
}

function onText(vm: VmView): string {
  return vm.where === 'cloud' ? vm.instance ?? '?' : vm.host ?? '?';
}

function columns(width: number, names: readonly VmView[]): Column[] {
  const nameW = Math.min(16, Math.max(6, ...names.map((v) => v.name.length)));
  const fixed: Column[] = [
    { title: 'NAME', width: nameW, align: 'left', cell: (v) => v.name },
    { title: 'WHERE', width: 6, align: 'left', cell: whereText },
  ];
  const wideEnough = width >= 100;
  if (wideEnough) fixed.push({ title: 'ON', width: 12, align: 'left', cell: onText });
  const tail: Column[] = [
    { title: 'IN STATE', width: 8, align: 'right', cell: (v, now) => fmtAge(now - v.stateSinceUs) },
    { title: 'READ', width: 8, align: 'right', cell: (v) => fmtRate(v.io.readBps) },
    { title: 'WRITE', width: 8, align: 'right', cell: (v) => fmtRate(v.io.writeBps) },
  ];
  if (wideEnough) tail.push({ title: 'IOPS', width: 7, align: 'right', cell: (v) => String(Math.round(v.io.readIops + v.io.writeIops)) });
  const used = [...fixed, ...tail].reduce((n, c) => n + c.width + 1, 0);
  const stateW = Math.max(8, width - used - 1);
  return [...fixed, { title: 'STATE', width: stateW, align: 'left', cell: stateText }, ...tail];
}

function rowColor(vm: VmView): string | null {
  if (vm.error !== null || vm.outcome === 'failed') return 'red';
  if (vm.outcome === 'rolled-back') return 'yellow';
  if (vm.where === 'cloud') return 'cyan';
  return null;
}

/** The VM table: a header, then the rows around the selection. */
export function vmLines(snap: Snapshot, view: ViewState, width: number, height: number, focused: boolean): string[] {
  const visible = filterVms(snap.vms, view.filter);
  const cols = columns(width, visible.length ? visible : snap.vms);
  const header = `{bold}${cols.map((c) => fit(c.title, c.width, c.align)).join(' ')}{/bold}`;
  if (visible.length === 0) {
    return [header, snap.vms.length === 0 ? '{gray-fg}no VMs in the trace yet{/gray-fg}' : `{gray-fg}no VM matches "${esc(view.filter)}"{/gray-fg}`];
  }
  const rowsAvail = Math.max(1, height - 1);
  const selected = effectiveSelection(view, visible);
  const selIndex = Math.max(0, visible.findIndex((v) => v.name === selected));
  const start = Math.max(0, Math.min(selIndex - Math.floor(rowsAvail / 2), visible.length - rowsAvail));
  const lines = [header];
  for (const vm of visible.slice(start, start + rowsAvail)) {
    const text = esc(cols.map((c) => fit(c.cell(vm, snap.clock.nowUs), c.width, c.align)).join(' '));
    const c = rowColor(vm);
    if (vm.name === selected) lines.push(focused ? `{inverse}${text}{/inverse}` : `{underline}${text}{/underline}`);
    else lines.push(c ? color(c, text) : text);
  }
  return lines;
}

/** The panel label, with the count and filter. */
export function vmLabel(snap: Snapshot, view: ViewState): string {
  const visible = filterVms(snap.vms, view.filter).length;
  const inCloud = snap.vms.filter((v) => v.where === 'cloud').length;
  return view.filter ? ` VMs ${visible}/${snap.vms.length} (${inCloud} in cloud) ` : ` VMs ${snap.vms.length} (${inCloud} in cloud) `;
}
