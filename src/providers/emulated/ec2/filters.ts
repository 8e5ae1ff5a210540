import { Ec2ApiError, invalid, type Params, type XmlValue } from './query.js';

/**
 * The request-side helpers every EC2 action shares: tag lists and tag
 * specifications, AWS filters with wildcards, and NextToken paging.
 */

export function tagSet(tags: Map<string, string>): XmlValue {
  return [...tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, value]) => ({ key, value }));
}

export function parseTags(items: Params[], where: string): Map<string, string> {
  const tags = new Map<string, string>();
  items.forEach((t, i) => {
    const key = t.str('Key');
    const value = t.optStr('Value') ?? '';
    if (key.length > 128) throw invalid(`${where}.${i + 1}.Key`, key, 'Tag keys are at most 128 characters.');
    if (value.length > 256) throw invalid(`${where}.${i + 1}.Value`, value, 'Tag values are at most 256 characters.');
    if (key.toLowerCase().startsWith('aws:')) throw invalid(`${where}.${i + 1}.Key`, key, 'Tag keys starting with aws: are reserved.');
    tags.set(key, value);
  });
  return tags;
}

export function parseTagSpecifications(p: Params, allowed: string[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  p.structList('TagSpecification').forEach((spec, i) => {
    const type = spec.str('ResourceType');
    if (!allowed.includes(type)) throw invalid(`TagSpecification.${i + 1}.ResourceType`, type, `Allowed here: ${allowed.join(', ')}.`);
    out.set(type, new Map([...(out.get(type) ?? []), ...parseTags(spec.structList('Tag'), `TagSpecification.${i + 1}.Tag`)]));
  });
  return out;
}

export type Filter = { name: string; values: string[] };

export function parseFilters(p: Params, allowed: string[], tagFilters = false): Filter[] {
  return p.structList('Filter').map((f) => {
    const name = f.str('Name');
    if (!allowed.includes(name) && !(tagFilters && name.startsWith('tag:') && name.length > 4)) {
      throw new Ec2ApiError('InvalidParameterValue', `The filter '${name}' is invalid`, 400);
    }
    return { name, values: f.strList('Value') };
  });
}

/** AWS filters: values within one filter OR, filters AND; `*` and `?` are wildcards. */
export function matchFilters(filters: Filter[], field: (name: string) => string[]): boolean {
  return filters.every((f) => {
    const actual = field(f.name);
    return f.values.some((pattern) => actual.some((a) => globMatch(pattern, a)));
  });
}

export function fieldOf(name: string, fields: Record<string, string[]>, tags: Map<string, string>): string[] {
  if (name === 'tag-key') return [...tags.keys()];
  if (name.startsWith('tag:')) {
    const v = tags.get(name.slice(4));
    return v === undefined ? [] : [v];
  }
  return fields[name] ?? [];
}

export function globMatch(pattern: string, value: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === value;
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(value);
}

export function paginate<T>(items: T[], p: Params, min: number, max: number, defaultPage: number): { items: T[]; nextToken: string | undefined } {
  const size = p.optInt('MaxResults', min, max) ?? defaultPage;
  const token = p.optStr('NextToken');
  let start = 0;
  if (token !== undefined) {
    const decoded = /^o(\d+)$/.exec(Buffer.from(token, 'base64').toString('utf8'));
    if (!decoded) throw new Ec2ApiError('InvalidNextToken', 'The specified token is invalid.', 400);
    start = Number(decoded[1]);
  }
  const end = Math.min(items.length, start + size);
  return { items: items.slice(start, end), nextToken: end < items.length ? Buffer.from(`o${end}`).toString('base64') : undefined };
}
