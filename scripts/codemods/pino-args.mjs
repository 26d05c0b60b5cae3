#!/usr/bin/env node
// Codemod (issue 13): the agent's hand-written logger took (msg, fields); pino takes
// (fields, msg). Swaps the two arguments of every error/warn/info/debug call whose receiver
// the type checker sees as the old AgentLogger, then leaves the rest to tsc: once
// injector/log.ts is gone, a call this missed no longer type-checks.
// Usage: node scripts/codemods/pino-args.mjs [--dry-run]   (run before removing AgentLogger)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cfgPath = join(root, 'tsconfig.json');
const cfg = ts.parseJsonConfigFileContent(ts.readConfigFile(cfgPath, ts.sys.readFile).config, ts.sys, root);
const program = ts.createProgram(cfg.fileNames, { ...cfg.options, noEmit: true, incremental: false });
const checker = program.getTypeChecker();
const LEVELS = new Set(['error', 'warn', 'info', 'debug']);
const dry = process.argv.includes('--dry-run');
let total = 0;
for (const sf of program.getSourceFiles()) {
  if (sf.isDeclarationFile || !sf.fileName.startsWith(root) || sf.fileName.includes('node_modules')) continue;
  const edits = [];
  const visit = (node) => {
    if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      LEVELS.has(node.expression.name.text) &&
      node.arguments.length === 2
    ) {
      const type = checker.getTypeAtLocation(node.expression.expression);
      const names = [type, ...(type.isUnionOrIntersection() ? type.types : [])].map((t) => (t.aliasSymbol ?? t.getSymbol())?.getName());
      if (names.includes('AgentLogger')) {
        const [msg, fields] = node.arguments;
        edits.push({ start: msg.getStart(sf), end: fields.getEnd(), text: `${fields.getText(sf)}, ${msg.getText(sf)}` });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (!edits.length) continue;
  let text = sf.getFullText();
  for (const e of edits.sort((a, b) => b.start - a.start)) text = text.slice(0, e.start) + e.text + text.slice(e.end);
  total += edits.length;
  console.log(`${edits.length}\t${sf.fileName.slice(root.length + 1)}`);
  if (!dry) writeFileSync(sf.fileName, text);
}
console.log(`${total} calls swapped${dry ? ' (dry run)' : ''}`);
