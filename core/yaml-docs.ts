/**
 * YAML/JSON parsing that keeps line numbers, so errors can point at the entry a user wrote.
 * JSON is parsed by the same YAML 1.2 parser (JSON is a subset), so both formats get lines.
 * Text in the plain subset core/yaml-fast.ts reads is read by it, and the package parses it
 * only if a line number is asked for; the rest goes to the package at once.
 */
import type { Document, LineCounter, Node } from 'yaml';
import { parseSimpleYaml } from './yaml-fast.js';
import { yamlLib } from './yaml-lib.js';

/** Error in an input file, already phrased with file, entry, line and field. */
export class InputFileError extends Error {
  override name = 'InputFileError';
}

export interface ParsedDoc {
  /** The document as the package parsed it (parsed on first use when the fast path read the text). */
  readonly doc: Document.Parsed;
  value: unknown;
  readonly lines: LineCounter;
}

/** Parse every document of a YAML/JSON text; syntax errors name the file and line. */
export function parseDocs(text: string, file: string): ParsedDoc[] {
  const values = parseSimpleYaml(text);
  if (!values) return parseWithPackage(text, file);
  // The same documents, in the same order (test/core/yaml-fast.test.ts): the k-th is the k-th.
  let full: ParsedDoc[] | undefined;
  const parsed = (k: number): ParsedDoc => (full ??= parseWithPackage(text, file))[k]!;
  return values.map((value, k) => ({
    value,
    get doc() {
      return parsed(k).doc;
    },
    get lines() {
      return parsed(k).lines;
    },
  }));
}

function parseWithPackage(text: string, file: string): ParsedDoc[] {
  const yaml = yamlLib();
  const lines = new yaml.LineCounter();
  const docs = yaml.parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: ParsedDoc[] = [];
  for (const doc of list) {
    const err = doc.errors[0];
    if (err) {
      const pos = lines.linePos(err.pos[0]);
      const tab = tabIndentedLine(text);
      if (tab !== undefined && (err.code === 'TAB_AS_INDENT' || tab <= pos.line)) {
        throw new InputFileError(
          `${file}: line ${tab}: indented with a tab; YAML allows only spaces for indentation (replace the tab(s) at the start of line ${tab} with spaces)`,
        );
      }
      throw new InputFileError(
        `${file}: line ${pos.line}, column ${pos.col}: not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${err.message.split('\n')[0]}`,
      );
    }
    if (doc.contents === null) continue; // empty document (e.g. trailing ---)
    out.push({ doc, value: doc.toJS({ maxAliasCount: 1000 }), lines });
  }
  return out;
}

/** The first line (1-based) whose indentation has a tab, outside block scalars is not tracked: a hint only. */
export function tabIndentedLine(text: string): number | undefined {
  const lines = text.split(/\r?\n/);
  for (const [i, l] of lines.entries()) if (/^ *\t/.test(l) && l.trim() !== '') return i + 1;
  return undefined;
}

/** 1-based line where the n-th item of a top-level sequence (or the path's node) starts. */
export function lineOf(d: ParsedDoc, path: (string | number)[]): number | undefined {
  const { isMap, isSeq } = yamlLib();
  let node: unknown = d.doc.contents;
  for (const key of path) {
    if (isSeq(node) && typeof key === 'number') node = node.items[key];
    else if (isMap(node)) node = node.get(key, true);
    else return undefined;
  }
  const range = (node as Node | undefined)?.range;
  return range ? d.lines.linePos(range[0]).line : undefined;
}
