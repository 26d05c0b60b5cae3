/**
 * A fast path for the YAML that `kubectl get -o yaml` prints and people write by hand: the
 * values of a text's documents when it keeps to a plain subset of YAML 1.2, or undefined when
 * it uses anything else, and the `yaml` package then parses it (yaml-docs.ts). The subset:
 * - documents separated by `---` lines; blank lines, comment lines, comments after a value;
 * - block mappings and block sequences, a sequence under a key at the key's indentation or
 *   deeper, a mapping begun on a sequence item's line (`- name: x`);
 * - flow mappings and sequences on one line (`{name: x, labels: {a: b}}`, `[a, b]`, `{}`);
 * - plain scalars resolved as the core schema does (null, booleans, decimal integers and
 *   plain decimal fractions, else strings); single- and double-quoted scalars on one line.
 * Anything else (block scalars, multi-line scalars, anchors, aliases, tags, directives,
 * complex or non-string keys, duplicate keys, tabs, CR, other numbers, an explicit `...`) is
 * declined rather than guessed at: the answer, when there is one, is the package's
 * (test/core/yaml-fast.test.ts compares the two on random and hand-made documents).
 *
 * Why: the package runs cold at every start of the CLI, and parsing a small bundle with it
 * was about a fifth of `plan`'s whole run (issue 12).
 */

/** Thrown inside the parser when the text leaves the subset; never escapes parseSimpleYaml. */
class Decline extends Error {}
const decline = (): never => {
  throw new Decline();
};

interface Line {
  indent: number;
  text: string;
}

/** The values of the documents (as parseDocs keeps them), in order; undefined when the text is outside the subset. */
export function parseSimpleYaml(text: string): unknown[] | undefined {
  if (OUTSIDE.test(text)) return undefined;
  try {
    const out: unknown[] = [];
    let doc: Line[] = [];
    // A document begun by `---` is one even when empty (its value null); the text before the
    // first `---` is one only when it has content (the package's documents).
    let explicit = false;
    const end = (): void => {
      if (doc.length) {
        const [v, next] = block(doc, 0);
        if (next !== doc.length) decline();
        out.push(v);
      } else if (explicit) out.push(null);
      doc = [];
    };
    for (const raw of text.split('\n')) {
      if (raw.startsWith('---') || raw.startsWith('...') || raw.startsWith('%')) {
        if (raw !== '---') decline();
        end();
        explicit = true;
        continue;
      }
      const body = lstrip(raw);
      if (body === '' || body.startsWith('#')) continue;
      const text = rstrip(body);
      // Blanks after `key:` or `-` are the package's way of writing a string of blanks.
      if (text.length < body.length && (text.endsWith(':') || text === '-')) decline();
      doc.push({ indent: raw.length - body.length, text });
    }
    end();
    return out;
  } catch (e) {
    if (e instanceof Decline) return undefined;
    throw e;
  }
}

/**
 * Characters the subset leaves to the package: tabs and CR (YAML's other white space and line
 * breaks), the other C0 and C1 controls, DEL, U+2028/9 and the BOM. Everything else that is
 * not a space is content, as for YAML (JavaScript's trim() would also take U+2028, NBSP...).
 */
const OUTSIDE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;
const lstrip = (s: string): string => s.replace(/^ +/, '');
const rstrip = (s: string): string => s.replace(/ +$/, '');

const isItem = (t: string): boolean => t === '-' || t.startsWith('- ');

/** The block node whose first line is L[i]: its value and the index of the line after it. */
function block(L: Line[], i: number): [unknown, number] {
  const { indent, text } = L[i]!;
  if (isItem(text)) return sequence(L, i, indent);
  if (keyOf(text)) return mapping(L, i, indent);
  return decline(); // a scalar on lines of its own
}

function mapping(L: Line[], i: number, n: number): [Record<string, unknown>, number] {
  const obj: Record<string, unknown> = {};
  while (i < L.length && L[i]!.indent === n) {
    const kv = keyOf(L[i]!.text);
    if (!kv) decline();
    const { key, rest } = kv!;
    if (Object.hasOwn(obj, key)) decline(); // the package refuses duplicate keys
    let v: unknown;
    if (rest === '') {
      const next = L[i + 1];
      if (next && next.indent > n) [v, i] = block(L, i + 1);
      else if (next && next.indent === n && isItem(next.text)) [v, i] = sequence(L, i + 1, n);
      else [v, i] = [null, i + 1];
    } else {
      v = inline(rest);
      i++;
    }
    if (i < L.length && L[i]!.indent > n) decline(); // a continuation line
    obj[key] = v;
  }
  return [obj, i];
}

function sequence(L: Line[], i: number, n: number): [unknown[], number] {
  const arr: unknown[] = [];
  while (i < L.length && L[i]!.indent === n && isItem(L[i]!.text)) {
    const t = L[i]!.text;
    let v: unknown;
    if (t === '-') {
      const next = L[i + 1];
      if (next && next.indent > n) [v, i] = block(L, i + 1);
      else [v, i] = [null, i + 1];
    } else {
      const after = t.slice(1);
      const rest = lstrip(after);
      if (isItem(rest) || rest.startsWith('#') || (after.length - rest.length > 1 && !keyOf(rest))) decline();
      if (keyOf(rest)) {
        // A mapping begun on the item's line: its keys are at the column of its first.
        const at = n + 1 + (after.length - rest.length);
        L[i] = { indent: at, text: rest };
        [v, i] = mapping(L, i, at);
      } else {
        v = inline(rest);
        i++;
      }
    }
    if (i < L.length && L[i]!.indent > n) decline();
    arr.push(v);
  }
  return [arr, i];
}

/** Plain keys: what Kubernetes names and labels use (letters, digits, `._/-`, inner spaces). */
const PLAIN_KEY = /^[A-Za-z0-9_./][A-Za-z0-9_./ -]*$/;

/** `key: rest` or `key:` (rest ''); null when the line is not a mapping entry of the subset. */
function keyOf(t: string): { key: string; rest: string } | null {
  let key: string;
  let after: number;
  if (t.startsWith('"') || t.startsWith("'")) {
    const [k, end] = quoted(t, 0);
    if (t[end] !== ':' || (end + 1 < t.length && t[end + 1] !== ' ')) return null;
    [key, after] = [k, end + 1];
  } else {
    const colon = t.indexOf(': ');
    const at = colon >= 0 ? colon : t.endsWith(':') ? t.length - 1 : -1;
    if (at <= 0) return null;
    key = rstrip(t.slice(0, at));
    if (!PLAIN_KEY.test(key) || plain(key) !== key) return null; // a key the core schema reads as another type, say
    after = at + 1;
  }
  if (key === '__proto__') decline();
  // (The package reads blanks beyond the first after `key:` as part of a plain scalar.)
  if (t.startsWith('  ', after)) decline();
  return { key, rest: withoutComment(lstrip(t.slice(after))) };
}

/** Text after a value: nothing, or a comment. */
function withoutComment(rest: string): string {
  return rest.startsWith('#') ? '' : rest;
}

/** A value on the rest of a line (block context). */
function inline(s: string): unknown {
  const c = s[0]!;
  if (c === '"' || c === "'" || c === '{' || c === '[') {
    const [v, end] = c === '{' || c === '[' ? flow(s, 0) : quoted(s, 0);
    tail(s, end);
    return v;
  }
  if ('&*!|>%@`?:-,]}#'.includes(c) && !(c === '-' && s.length > 1 && s[1] !== ' ')) decline();
  const cut = s.indexOf(' #');
  const text = rstrip(cut >= 0 ? s.slice(0, cut) : s);
  if (text.includes(': ') || text.endsWith(':')) decline();
  return plain(text);
}

/** Only blanks, or a comment, may follow a value that ends at `end`. */
function tail(s: string, end: number): void {
  const rest = s.slice(end);
  const body = lstrip(rest);
  if (body !== '' && !(body.startsWith('#') && body.length < rest.length)) decline();
}

/** A quoted scalar starting at s[i] (on this line): its value and the index after its closing quote. */
function quoted(s: string, i: number): [string, number] {
  const q = s[i];
  let out = '';
  let j = i + 1;
  for (;;) {
    if (j >= s.length) return decline(); // continues on the next line
    const c = s[j]!;
    if (c === q) {
      if (q === "'" && s[j + 1] === "'") {
        out += "'";
        j += 2;
        continue;
      }
      return [out, j + 1];
    }
    if (q === '"' && c === '\\') {
      const e = s[j + 1];
      if (e === 'u') {
        const hex = s.slice(j + 2, j + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) decline();
        out += String.fromCharCode(parseInt(hex, 16));
        j += 6;
        continue;
      }
      const esc = e === undefined ? undefined : ESCAPES[e];
      if (esc === undefined) decline();
      out += esc;
      j += 2;
      continue;
    }
    out += c;
    j++;
  }
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '0': '\0' };

/** A flow node starting at s[i]: its value and the index after it. */
function flow(s: string, i: number): [unknown, number] {
  i = skip(s, i);
  const c = s[i];
  if (c === '{') {
    const obj: Record<string, unknown> = {};
    i = skip(s, i + 1);
    while (s[i] !== '}') {
      let key: unknown;
      if (s[i] === '"' || s[i] === "'") [key, i] = quoted(s, i);
      else {
        [key, i] = flowPlain(s, i);
        if (typeof key !== 'string' || !PLAIN_KEY.test(key)) decline();
      }
      if (s[i] !== ':' || key === '__proto__' || Object.hasOwn(obj, key as string)) decline();
      i = skip(s, i + 1);
      let v: unknown = null;
      if (s[i] !== ',' && s[i] !== '}') [v, i] = flow(s, i);
      obj[key as string] = v;
      i = skip(s, i);
      if (s[i] === ',') i = skip(s, i + 1);
      else if (s[i] !== '}') decline();
    }
    return [obj, i + 1];
  }
  if (c === '[') {
    const arr: unknown[] = [];
    i = skip(s, i + 1);
    while (s[i] !== ']') {
      let v: unknown;
      [v, i] = flow(s, i);
      arr.push(v);
      i = skip(s, i);
      if (s[i] === ',') i = skip(s, i + 1);
      else if (s[i] !== ']') decline(); // a pair in a sequence, or the line ended
    }
    return [arr, i + 1];
  }
  if (c === '"' || c === "'") return quoted(s, i);
  return flowPlain(s, i);
}

function skip(s: string, i: number): number {
  while (s[i] === ' ') i++;
  return i;
}

/** A plain scalar in a flow collection: up to `,` `]` `}` or `: `; declined at any other indicator. */
function flowPlain(s: string, i: number): [unknown, number] {
  const c = s[i];
  if (c === undefined || '&*!|>%@`?:-,[]{}#\'"'.includes(c)) {
    if (!(c === '-' && s[i + 1] !== undefined && !' ,[]{}'.includes(s[i + 1]!))) decline();
  }
  let j = i;
  for (; j < s.length; j++) {
    const d = s[j]!;
    if (d === ',' || d === ']' || d === '}') break;
    if (d === '[' || d === '{' || (d === '#' && s[j - 1] === ' ')) decline();
    if (d === ':' && (j + 1 === s.length || ' ,]}'.includes(s[j + 1]!))) break;
  }
  if (j >= s.length) decline(); // the collection goes on past the line
  return [plain(rstrip(s.slice(i, j))), j];
}

/** A plain scalar as the core schema resolves it; declined for the forms the subset leaves to the package. */
function plain(s: string): unknown {
  if (WORDS.has(s)) return WORDS.get(s);
  const c = s.charCodeAt(0);
  // Only these can start a number (digits, sign, dot): the rest are strings.
  if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46) {
    if (/^(?:0|-?[1-9][0-9]*)$/.test(s)) {
      const n = Number(s);
      return Number.isSafeInteger(n) ? n : decline();
    }
    if (/^-?(?:0|[1-9][0-9]*)\.[0-9]+$/.test(s)) return Number(s);
    if (NUMBERISH.some((re) => re.test(s))) decline();
  }
  return s;
}

/** The core schema's nulls and booleans. */
const WORDS = new Map<string, null | boolean>([
  ...['', '~', 'null', 'Null', 'NULL'].map((w) => [w, null] as const),
  ...['true', 'True', 'TRUE'].map((w) => [w, true] as const),
  ...['false', 'False', 'FALSE'].map((w) => [w, false] as const),
]);

/** The core schema's other numbers (octal, hex, exponents, signs, leading zeros, .inf, .nan). */
const NUMBERISH = [
  /^[-+]?[0-9]+$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/,
  /^[-+]?\.(?:inf|Inf|INF)$/,
  /^\.(?:nan|NaN|NAN)$/,
  /^0o[0-7]+$/,
  /^0x[0-9a-fA-F]+$/,
];
