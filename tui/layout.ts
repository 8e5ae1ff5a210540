/** Where each panel goes for a terminal size. Pure, so sizes are testable without a screen. */

export interface Rect {
  top: number;
  left: number;
  width: number;
  height: number;
}

export type PanelId = 'header' | 'hosts' | 'wan' | 'proxy' | 'vms' | 'instances' | 'log' | 'footer';

export interface Layout {
  cols: number;
  rows: number;
  /** Wide layouts have room for charts. */
  wide: boolean;
  panels: Record<PanelId, Rect>;
  /** The area the detail view covers (between header and footer). */
  body: Rect;
}

/** Below this the screen cannot hold the panels; the view shows a notice instead. */
export const MIN_COLS = 60;
export const MIN_ROWS = 20;

const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

export function computeLayout(cols: number, rows: number): Layout {
  const wide = cols >= 120 && rows >= 36;
  const bodyTop = 1;
  const bodyHeight = rows - 2;
  const body: Rect = { top: bodyTop, left: 0, width: cols, height: bodyHeight };
  const header: Rect = { top: 0, left: 0, width: cols, height: 1 };
  const footer: Rect = { top: rows - 1, left: 0, width: cols, height: 1 };

  const topH = clamp(Math.floor(rows * 0.3), 7, 16);
  const bottomH = clamp(Math.floor(rows * 0.25), 6, 16);
  const midTop = bodyTop + topH;
  const midH = bodyHeight - topH - bottomH;
  const bottomTop = midTop + midH;

  const hostsW = Math.floor(cols * (wide ? 0.3 : 0.4));
  const wanW = Math.floor(cols * (wide ? 0.4 : 0.3));
  const proxyW = cols - hostsW - wanW;
  const top = {
    hosts: { top: bodyTop, left: 0, width: hostsW, height: topH },
    wan: { top: bodyTop, left: hostsW, width: wanW, height: topH },
    proxy: { top: bodyTop, left: hostsW + wanW, width: proxyW, height: topH },
  };
  if (wide) {
    const vmsW = Math.floor(cols * 0.68);
    return {
      cols, rows, wide, body,
      panels: {
        header, footer, ...top,
        vms: { top: midTop, left: 0, width: vmsW, height: midH },
        instances: { top: midTop, left: vmsW, width: cols - vmsW, height: midH },
        log: { top: bottomTop, left: 0, width: cols, height: bottomH },
      },
    };
  }
  const logW = Math.floor(cols * 0.62);
  return {
    cols, rows, wide, body,
    panels: {
      header, footer, ...top,
      vms: { top: midTop, left: 0, width: cols, height: midH },
      log: { top: bottomTop, left: 0, width: logW, height: bottomH },
      instances: { top: bottomTop, left: logW, width: cols - logW, height: bottomH },
    },
  };
}
