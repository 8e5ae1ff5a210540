/**
 * A tiny well-formedness checker for the XML and HTML this project writes
 * (JUnit, SVG, the HTML report): tags balance, attributes are quoted, entities
 * are known, nothing but whitespace sits outside the root. It returns the
 * element tree so tests can look for what they expect. Not a general parser:
 * no DTDs, no CDATA, no comments beyond skipping them.
 */
export interface MarkupNode {
  name: string;
  attrs: Record<string, string>;
  children: MarkupNode[];
  text: string;
}

const VOID_HTML = new Set(['meta', 'br', 'hr', 'img', 'link', 'input', 'col', 'wbr']);
const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;

export function parseMarkup(src: string, options: { html?: boolean } = {}): MarkupNode {
  const root: MarkupNode = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: MarkupNode[] = [root];
  let i = 0;
  const fail = (why: string): never => {
    const line = src.slice(0, i).split('\n').length;
    throw new Error(`line ${line}: ${why}: ${JSON.stringify(src.slice(i, i + 60))}`);
  };
  const checkText = (text: string): string => {
    for (let k = text.indexOf('&'); k >= 0; k = text.indexOf('&', k + 1)) {
      ENTITY.lastIndex = k;
      if (!ENTITY.test(text)) fail(`bad entity or bare & in ${JSON.stringify(text.slice(k, k + 12))}`);
    }
    return text;
  };
  while (i < src.length) {
    if (src.startsWith('<?', i)) {
      i = src.indexOf('?>', i) + 2;
      if (i < 2) fail('unterminated <?');
      continue;
    }
    if (src.startsWith('<!--', i)) {
      i = src.indexOf('-->', i) + 3;
      if (i < 3) fail('unterminated comment');
      continue;
    }
    if (src.startsWith('<!', i)) {
      i = src.indexOf('>', i) + 1;
      continue;
    }
    if (src.startsWith('</', i)) {
      const m = /^<\/([\w:-]+)\s*>/.exec(src.slice(i));
      if (!m) fail('bad end tag');
      const top = stack.pop()!;
      if (top.name !== m![1]) fail(`</${m![1]}> closes <${top.name}>`);
      i += m![0].length;
      continue;
    }
    if (src[i] === '<') {
      const m = /^<([\w:-]+)((?:\s+[\w:-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/.exec(src.slice(i));
      if (!m) fail('bad start tag (unquoted attribute or stray <)');
      const node: MarkupNode = { name: m![1]!, attrs: {}, children: [], text: '' };
      for (const a of m![2]!.matchAll(/([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        if (a[1]! in node.attrs) fail(`duplicate attribute ${a[1]}`);
        node.attrs[a[1]!] = decode(checkText(a[2] ?? a[3] ?? ''));
      }
      stack[stack.length - 1]!.children.push(node);
      i += m![0].length;
      const selfClosing = m![3] === '/' || (options.html && VOID_HTML.has(node.name));
      if (!selfClosing) {
        if (options.html && (node.name === 'style' || node.name === 'script')) {
          const end = src.indexOf(`</${node.name}>`, i);
          if (end < 0) fail(`unterminated <${node.name}>`);
          node.text = src.slice(i, end);
          i = end + node.name.length + 3;
        } else stack.push(node);
      }
      continue;
    }
    const next = src.indexOf('<', i);
    const text = src.slice(i, next < 0 ? src.length : next);
    if (stack.length === 1 && text.trim() !== '') fail('text outside the root element');
    stack[stack.length - 1]!.text += decode(checkText(text));
    i = next < 0 ? src.length : next;
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const elements = root.children;
  if (elements.length !== 1) throw new Error(`expected one root element, got ${elements.length}`);
  return elements[0]!;
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
function decode(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : NAMED[e]!);
}

export function* walk(node: MarkupNode): Generator<MarkupNode> {
  yield node;
  for (const c of node.children) yield* walk(c);
}

export function findAll(node: MarkupNode, name: string): MarkupNode[] {
  return [...walk(node)].filter((n) => n.name === name);
}

export function textOf(node: MarkupNode): string {
  return node.text + node.children.map(textOf).join('');
}
