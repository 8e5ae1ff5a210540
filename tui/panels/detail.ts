import type { VmDetail } from '../snapshot.js';
import { clip, color, esc, fit, fmtAge, fmtBytes, fmtClock, fmtPct, fmtRate, sparkline } from '../text.js';
import { logLine } from './log.js';

/**
 * One VM up close: where it runs, its machine states with timestamps, its
 * I/O, its proxy, and the blocks streamed to it over time.
 * `withSparklines` is false when the caller draws the blocks chart itself.
 */
export function detailLines(d: VmDetail, nowUs: number, width: number, height: number, withSparklines = true): string[] {
  const vm = d.vm;
  const on = vm.where === 'cloud' ? `${vm.instance ?? '?'}${vm.instanceType ? ` (${vm.instanceType})` : ''}` : vm.host ?? '?';
  const line = (text: string): string => esc(clip(text, width));
  const nameW = Math.min(30, [...vm.name].length);
  const head: string[] = [
    `{bold}${esc(clip(vm.name, nameW))}{/bold}${line(`  ${vm.where} on ${on}  power ${vm.power ?? '?'}`.slice(0, Math.max(0, width - nameW)))}`,
    vm.error
      ? color('red', line(`state ${vm.machine ?? '—'}:${vm.state ?? '—'} for ${fmtAge(nowUs - vm.stateSinceUs)}  error ${vm.error}`))
      : line(`state ${vm.machine ?? '—'}:${vm.state ?? '—'} for ${fmtAge(nowUs - vm.stateSinceUs)}  outcome ${vm.outcome ?? '—'}`),
    ...(vm.progress ? [line(`task  ${vm.progress.done}/${vm.progress.total} units (${vm.progress.total > 0 ? Math.floor((vm.progress.done / vm.progress.total) * 100) : 0}%), ${vm.progress.rate} per hour`)] : []),
    line(`I/O  read ${fmtRate(vm.io.readBps)}  write ${fmtRate(vm.io.writeBps)}  iops ${Math.round(vm.io.readIops)}r/${Math.round(vm.io.writeIops)}w`),
  ];
  const p = d.proxy;
  if (p) {
    head.push(line(`proxy  hit ${fmtPct(p.hitRatio)}  cache ${fmtBytes(p.cacheBytes)}/${fmtBytes(p.cacheCapacity)}  prefetch q ${p.prefetchQueued} (${p.prefetchHits} hits)`));
    head.push(line(`write-back  backlog ${fmtBytes(p.wbBacklogBytes)}  lag ${fmtAge(p.wbLagUs)}  wire ${fmtBytes(p.wireBytes)} for ${fmtBytes(p.guestBytes)} guest`));
  } else {
    head.push(`{gray-fg}${line('proxy  no proxy.stats for this VM')}{/gray-fg}`);
  }
  head.push(line(`blocks streamed  fetched ${d.blocksTotal.fetched}  pushed ${d.blocksTotal.pushed}  ${fmtBytes(d.blocksTotal.bytes)} in ${d.blocks.length} samples`));
  if (withSparklines) {
    const w = Math.max(0, width - 11);
    head.push(`blocks/smp ${color('cyan', sparkline(d.blocks.map((b) => b.bytes), w))}`);
    head.push(`read B/s   ${color('green', sparkline(d.io.map((s) => s.readBps), w))}`);
  }
  const lines = head;
  const rest = Math.max(0, height - lines.length);
  const eventsRoom = d.events.length === 0 ? 0 : Math.min(d.events.length + 1, Math.floor(rest / 2));
  const statesRoom = rest - eventsRoom;
  if (statesRoom > 1) {
    lines.push(`{bold}machine states (${d.states.length}){/bold}`);
    const states = d.states.slice(-(statesRoom - 1));
    for (let i = 0; i < states.length; i++) {
      const s = states[i]!;
      const next = states[i + 1];
      const dur = next ? fmtAge(next.t - s.t) : `${fmtAge(nowUs - s.t)}…`;
      const machineW = 12;
      lines.push(esc(`${fit(fmtClock(s.t), 8, 'right')} ${fit(s.machine, machineW)} ${fit(s.state, Math.max(4, width - machineW - 19))} ${fit(dur, 8, 'right')}`.trimEnd()));
    }
    if (d.states.length === 0) lines.push('{gray-fg}no machine.state events for this VM{/gray-fg}');
  }
  if (eventsRoom > 1) {
    lines.push('{bold}events{/bold}');
    for (const e of d.events.slice(-(eventsRoom - 1))) lines.push(logLine(e, width));
  }
  return lines.slice(0, height);
}
