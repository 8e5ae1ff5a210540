/**
 * The wire format of EC2's Query protocol, both ways: the SDK sends a
 * form-encoded body whose keys flatten lists as `Name.N` (1-based) and
 * structures as `Name.Member`; EC2 answers XML whose lists are `<xSet><item>`.
 */

export class Ec2ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
    this.name = code;
  }
}

export type ParamTree = { [key: string]: ParamNode };
export type ParamNode = string | ParamTree | ParamNode[];

/** `Filter.1.Value.2=x` → `{ Filter: [{ Value: [, 'x'] }] }` (arrays hold items by their 1-based index - 1). */
export function parseQueryBody(body: string): { action: string; version: string | undefined; tree: ParamTree } {
  const form = new URLSearchParams(body);
  const tree: ParamTree = {};
  let action = '';
  let version: string | undefined;
  for (const [key, value] of form) {
    if (key === 'Action') { action = value; continue; }
    if (key === 'Version') { version = value; continue; }
    const parts = key.split('.');
    let node: ParamTree | ParamNode[] = tree;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const last = i === parts.length - 1;
      const nextIsIndex = !last && /^\d+$/.test(parts[i + 1]!);
      const slot: string | number = Array.isArray(node) ? Number(part) - 1 : part;
      if (Array.isArray(node) && (!Number.isInteger(slot) || (slot as number) < 0)) {
        throw new Ec2ApiError('InvalidParameterValue', `Invalid list index in parameter ${key}`, 400);
      }
      const holder = node as Record<string | number, ParamNode>;
      if (last) {
        holder[slot] = value;
      } else {
        if (holder[slot] === undefined || typeof holder[slot] === 'string') holder[slot] = nextIsIndex ? [] : {};
        node = holder[slot] as ParamTree | ParamNode[];
      }
    }
  }
  return { action, version, tree };
}

/** Typed, path-aware reads of a parsed request, failing the way EC2 does. */
export class Params {
  constructor(private readonly tree: ParamTree, private readonly prefix = '') {}

  has(name: string): boolean {
    return this.tree[name] !== undefined;
  }

  optStr(name: string): string | undefined {
    const v = this.tree[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw invalid(this.path(name), '(structured value)');
    return v;
  }

  str(name: string): string {
    const v = this.optStr(name);
    if (v === undefined || v === '') throw new Ec2ApiError('MissingParameter', `The request must contain the parameter ${this.path(name)}`, 400);
    return v;
  }

  optInt(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.optStr(name);
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max) throw invalid(this.path(name), v, `expected an integer from ${min} to ${max}`);
    return Number(v);
  }

  int(name: string, min: number, max?: number): number {
    const v = this.optInt(name, min, max);
    if (v === undefined) throw new Ec2ApiError('MissingParameter', `The request must contain the parameter ${this.path(name)}`, 400);
    return v;
  }

  bool(name: string): boolean {
    const v = this.optStr(name);
    if (v === undefined) return false;
    if (v !== 'true' && v !== 'false') throw invalid(this.path(name), v, 'expected true or false');
    return v === 'true';
  }

  strList(name: string): string[] {
    const v = this.tree[name];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw invalid(this.path(name), typeof v === 'string' ? v : '(structure)', 'expected a list');
    return v.filter((x) => x !== undefined).map((x, i) => {
      if (typeof x !== 'string') throw invalid(`${this.path(name)}.${i + 1}`, '(structure)');
      return x;
    });
  }

  structList(name: string): Params[] {
    const v = this.tree[name];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw invalid(this.path(name), '(value)', 'expected a list');
    return v.filter((x) => x !== undefined).map((x, i) => {
      if (typeof x !== 'object' || Array.isArray(x)) throw invalid(`${this.path(name)}.${i + 1}`, String(x));
      return new Params(x, `${this.path(name)}.${i + 1}`);
    });
  }

  struct(name: string): Params | undefined {
    const v = this.tree[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) throw invalid(this.path(name), String(v), 'expected a structure');
    return new Params(v, this.path(name));
  }

  path(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }
}

export function invalid(parameter: string, value: string, why?: string): Ec2ApiError {
  return new Ec2ApiError('InvalidParameterValue', `Value (${value}) for parameter ${parameter} is invalid.${why ? ` ${why}` : ''}`, 400);
}

/** A response body: lists render as `<item>` children, undefined fields are left out. */
export type XmlValue = string | number | boolean | undefined | XmlValue[] | { [key: string]: XmlValue };

export function renderXml(value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((item) => `<item>${renderXml(item)}</item>`).join('');
  if (typeof value === 'object') {
    let out = '';
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined) continue;
      const inner = renderXml(v);
      out += inner === '' && Array.isArray(v) ? `<${key}/>` : `<${key}>${inner}</${key}>`;
    }
    return out;
  }
  return escapeXml(String(value));
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export function successXml(action: string, requestId: string, body: { [key: string]: XmlValue }): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${renderXml(body)}</${action}Response>`;
}

export function errorXml(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

/**
 * ISO-8601 for epoch milliseconds, computed by hand (days-from-civil
 * inverted) because the determinism seam keeps `Date` out of simulation code.
 */
export function isoFromEpochMs(epochMs: number): string {
  const ms = Math.floor(epochMs);
  const days = Math.floor(ms / 86_400_000);
  const msOfDay = ms - days * 86_400_000;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const hh = Math.floor(msOfDay / 3_600_000);
  const mm = Math.floor((msOfDay % 3_600_000) / 60_000);
  const ss = Math.floor((msOfDay % 60_000) / 1000);
  return `${pad(y, 4)}-${pad(m)}-${pad(d)}T${pad(hh)}:${pad(mm)}:${pad(ss)}.${pad(msOfDay % 1000, 3)}Z`;
}
