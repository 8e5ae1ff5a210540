import { parseWanConfig, type WanConfig } from '../providers/emulated/wan/wan-link.js';

/** The `wan:` section, parsed by the link model itself; null when the scenario has none. */
export function parseWanSection(raw: unknown, path: string): WanConfig | null {
  if (raw === undefined || raw === null) return null;
  return parseWanConfig(raw, path);
}
