import blessed from 'blessed';
import contrib from 'blessed-contrib';
import type { Frame } from './frame.js';
import { MIN_COLS, MIN_ROWS, computeLayout, type Layout, type PanelId, type Rect } from './layout.js';
import { detailLines } from './panels/detail.js';
import { helpLines } from './panels/help.js';
import { hostsLines } from './panels/hosts.js';
import { instanceLines } from './panels/instances.js';
import { logLines } from './panels/log.js';
import { proxyLines } from './panels/proxy.js';
import { footerLine, headerLine } from './panels/status.js';
import { vmLabel, vmLines } from './panels/vms.js';
import { wanLines, wanSparkLines, wanSummary } from './panels/wan.js';
import { esc, fit, fmtClock } from './text.js';

type Box = blessed.Widgets.BoxElement;
/** blessed-contrib's line chart (its typings are incomplete). */
interface LineChart extends Box {
  options: { maxY?: number };
  setData(series: Array<{ title: string; x: string[]; y: number[]; style?: { line: string } }>): void;
}

interface Widgets {
  key: string;
  layout: Layout;
  boxes: Partial<Record<PanelId, Box>>;
  wanText: Box | null;
  wanChart: LineChart | null;
  detail: Box | null;
  detailChart: LineChart | null;
  help: Box;
  tooSmall: Box | null;
}

const BORDER = { type: 'line' } as const;
const LABELS: Record<PanelId, string> = {
  header: '', footer: '', hosts: ' on-prem hosts ', wan: ' WAN ', proxy: ' proxies · cost ', vms: ' VMs ', instances: ' cloud instances ', log: ' events ',
};

/**
 * Draws a Frame into blessed widgets. It owns widgets, not data: it never
 * reads the model and never changes it. Widgets are rebuilt when the size or
 * the mode changes (charts size their canvas once, when attached) and their
 * content is replaced on every render.
 */
export class TuiView {
  private widgets: Widgets | null = null;
  private last: Frame | null = null;
  private readonly onResize = (): void => {
    if (this.last) this.render(this.last);
  };

  constructor(private readonly screen: blessed.Widgets.Screen) {
    screen.on('resize', this.onResize);
  }

  render(frame: Frame): void {
    this.last = frame;
    const cols = this.screen.width as number;
    const rows = this.screen.height as number;
    const mode = frame.view.mode === 'help' ? frame.view.underHelp : frame.view.mode;
    const key = `${cols}x${rows}:${mode}`;
    if (!this.widgets || this.widgets.key !== key) this.build(key, cols, rows, mode === 'detail');
    const w = this.widgets!;
    if (w.tooSmall) {
      w.tooSmall.setContent(`terminal too small: spillway needs at least ${MIN_COLS}x${MIN_ROWS}, this one is ${cols}x${rows}. Enlarge it, or press q to quit.`);
      this.screen.render();
      return;
    }
    this.fill(w, frame, mode === 'detail');
    w.help.hidden = frame.view.mode !== 'help';
    if (!w.help.hidden) {
      w.help.setContent(helpLines(frame.playback.kind).join('\n'));
      w.help.setFront();
    }
    this.screen.render();
  }

  destroy(): void {
    this.screen.removeListener('resize', this.onResize);
    this.clear();
  }

  private clear(): void {
    for (const child of [...this.screen.children]) child.destroy();
    this.widgets = null;
  }

  private build(key: string, cols: number, rows: number, detail: boolean): void {
    this.clear();
    const screen = this.screen;
    const layout = computeLayout(cols, rows);
    const help = this.box({ top: 'center', left: 'center', width: Math.min(cols, 84), height: Math.min(rows, 16) }, ' help ', true);
    help.hidden = true;
    if (cols < MIN_COLS || rows < MIN_ROWS) {
      const tooSmall = blessed.box({ parent: screen, top: 0, left: 0, width: cols, height: rows, tags: false, wrap: true });
      this.widgets = { key, layout, boxes: {}, wanText: null, wanChart: null, detail: null, detailChart: null, help, tooSmall };
      return;
    }
    const boxes: Partial<Record<PanelId, Box>> = {};
    boxes.header = this.box(layout.panels.header, '', false);
    boxes.footer = this.box(layout.panels.footer, '', false);
    let wanText: Box | null = null;
    let wanChart: LineChart | null = null;
    let detailBox: Box | null = null;
    let detailChart: LineChart | null = null;
    if (detail) {
      const body = layout.body;
      if (layout.wide) {
        const textW = Math.floor(body.width * 0.55);
        detailBox = this.box({ ...body, width: textW }, ' VM detail ', true);
        const chartRect = { ...body, left: body.left + textW, width: body.width - textW };
        const chartBox = this.box(chartRect, ' blocks streamed (KiB per sample) ', true);
        detailChart = this.chart(blessed.box({ parent: chartBox, top: 0, left: 0, width: chartRect.width - 2, height: chartRect.height - 2 }));
      } else {
        detailBox = this.box(body, ' VM detail ', true);
      }
    } else {
      for (const id of ['hosts', 'proxy', 'vms', 'instances', 'log'] as const) boxes[id] = this.box(layout.panels[id], LABELS[id], true);
      boxes.wan = this.box(layout.panels.wan, LABELS.wan, true);
      if (layout.wide) {
        const inner = layout.panels.wan;
        wanText = blessed.box({ parent: boxes.wan, top: 0, left: 0, width: inner.width - 2, height: 3, tags: true, wrap: false });
        const holder = blessed.box({ parent: boxes.wan, top: 3, left: 0, width: inner.width - 2, height: inner.height - 2 - 3 });
        wanChart = this.chart(holder);
      }
    }
    help.setFront();
    this.widgets = { key, layout, boxes, wanText, wanChart, detail: detailBox, detailChart, help, tooSmall: null };
  }

  private box(rect: Rect | { top: number | string; left: number | string; width: number; height: number }, label: string, border: boolean): Box {
    return blessed.box({
      parent: this.screen, ...rect, tags: true, wrap: false,
      ...(border ? { border: BORDER, label, style: { border: { fg: 'gray' }, label: { fg: 'white' } } } : {}),
    } as blessed.Widgets.BoxOptions);
  }

  /** A blessed-contrib line chart filling `holder`, created through a grid as contrib requires. */
  private chart(holder: Box): LineChart {
    const grid = new contrib.grid({ rows: 1, cols: 1, screen: holder as unknown as blessed.Widgets.Screen, hideBorder: true });
    return grid.set(0, 0, 1, 1, contrib.line, {
      style: { line: 'green', text: 'white', baseline: 'white' }, showLegend: false, xLabelPadding: 3, xPadding: 5, wholeNumbersOnly: false,
    }) as unknown as LineChart;
  }

  private fill(w: Widgets, frame: Frame, detail: boolean): void {
    const { snap, view } = frame;
    const inner = (id: PanelId): { width: number; height: number } => {
      const r = w.layout.panels[id];
      return id === 'header' || id === 'footer' ? { width: r.width, height: 1 } : { width: r.width - 2, height: r.height - 2 };
    };
    w.boxes.header!.setContent(headerLine(frame, w.layout.cols));
    w.boxes.footer!.setContent(footerLine(frame, w.layout.cols));
    if (detail) {
      const box = w.detail!;
      const d = snap.detail;
      box.setLabel(` VM ${esc(fit(d?.vm.name ?? view.detailVm ?? '?', 30).trimEnd())} — esc back `);
      const width = (box.width as number) - 2;
      const height = (box.height as number) - 2;
      box.setContent(d ? detailLines(d, snap.clock.nowUs, width, height, w.detailChart === null).join('\n') : `{gray-fg}no such VM: ${esc(view.detailVm ?? '')}{/gray-fg}`);
      if (w.detailChart) {
        const blocks = d?.blocks ?? [];
        setSeries(w.detailChart, blocks.map((b) => b.t), [{ title: 'KiB', values: blocks.map((b) => b.bytes / 1024), color: 'cyan' }]);
      }
      return;
    }
    const focus = view.mode === 'main' ? view.focus : null;
    for (const id of ['hosts', 'vms', 'instances', 'log'] as const) {
      const box = w.boxes[id]!;
      box.style.border = { fg: focus === id ? 'yellow' : 'gray' };
    }
    const set = (id: PanelId, lines: string[]): void => {
      w.boxes[id]!.setContent(lines.join('\n'));
    };
    set('hosts', hostsLines(snap, inner('hosts').width, inner('hosts').height, view.hostsScroll));
    set('proxy', proxyLines(snap, inner('proxy').width, inner('proxy').height));
    w.boxes.vms!.setLabel(vmLabel(snap, view));
    set('vms', vmLines(snap, view, inner('vms').width, inner('vms').height, focus === 'vms'));
    w.boxes.instances!.setLabel(` cloud instances ${snap.instances.filter((i) => i.state === 'running').length}/${snap.instances.length} `);
    set('instances', instanceLines(snap, inner('instances').width, inner('instances').height, view.instancesScroll));
    w.boxes.log!.setLabel(view.logScroll > 0 ? ` events (scrolled back ${view.logScroll}) ` : ' events ');
    set('log', logLines(snap, view, inner('log').width, inner('log').height));
    if (w.wanChart && w.wanText) {
      const width = inner('wan').width;
      w.wanText.setContent([wanSummary(snap, width), ...wanSparkLines(snap, width)].join('\n'));
      const series = snap.wan.series;
      setSeries(w.wanChart, series.map((s) => s.t), [
        { title: 'up MB/s', values: series.map((s) => s.upBps / 1e6), color: 'green' },
        { title: 'dn MB/s', values: series.map((s) => s.downBps / 1e6), color: 'cyan' },
      ]);
    } else {
      set('wan', wanLines(snap, inner('wan').width, inner('wan').height));
    }
  }
}

/** Feed a line chart the newest points that fit its width. */
function setSeries(chart: LineChart, times: readonly number[], series: Array<{ title: string; values: number[]; color: string }>): void {
  const room = Math.max(2, ((chart.width as number) - 8) * 2);
  const from = Math.max(0, times.length - room);
  const x = times.slice(from).map((t) => fmtClock(t));
  if (x.length === 0) x.push(fmtClock(0));
  const data = series.map((s) => {
    const y = s.values.slice(from);
    return { title: s.title, x, y: y.length ? y : [0], style: { line: s.color } };
  });
  const max = Math.max(0, ...data.flatMap((d) => d.y));
  // contrib divides by the max: an all-zero series would draw NaN coordinates.
  chart.options.maxY = max > 0 ? undefined : 1;
  chart.setData(data);
}
