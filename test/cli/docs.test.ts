// The docs cover what the product exposes: every metric either process registers (its
// name, in docs/*.md) and every flag of every command (as `--flag`, on that command's page:
// the agent in injector.md, the webhook in webhook.md, the others in cli.md). The flags are
// read from each command's --help, the metrics from the registries the processes build, so
// a new flag or metric without docs fails here.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { commands } from '../../bin/main.js';
import { createAgentMetrics } from '../../injector/metrics.js';
import { createWebhookMetrics } from '../../webhook/admission/metrics.js';
import { createControllerMetrics } from '../../webhook/controller/metrics.js';
import { runCli } from '../util/cli.js';
import { repoRoot } from '../util/fixtures.js';

const docsDir = join(repoRoot, 'docs');
const page = (name: string): string => readFileSync(join(docsDir, name), 'utf8');
const allDocs = readdirSync(docsDir)
  .filter((f) => f.endsWith('.md'))
  .map(page)
  .join('\n');

/** The flags a command's --help lists. */
function flagsOf(command: string): string[] {
  const r = runCli([command, '--help']);
  if (r.code !== 0) throw new Error(`${command} --help exited ${r.code}: ${r.stderr}`);
  return [...new Set(r.stdout.match(/--[a-z][a-z0-9-]*/g) ?? [])].filter((f) => f !== '--help').sort();
}

const PAGE: Record<string, string> = { agent: 'injector.md', webhook: 'webhook.md' };

t.test('every flag of every command is on its docs page', async (t) => {
  t.ok(commands.length >= 7, `${commands.length} commands`);
  let n = 0;
  for (const c of commands) {
    const file = PAGE[c.name] ?? 'cli.md';
    const text = page(file);
    t.match(text, new RegExp(`\\b${c.name}\\b`), `docs/${file} names the ${c.name} command`);
    for (const flag of flagsOf(c.name)) {
      // In a code span: `--flag`, `--flag VALUE`, `-f, --flag FILE`, `--flag=false`.
      t.match(text, new RegExp(`\`[^\`\\n]*${flag}(?![a-z0-9-])[^\`\\n]*\``), `${c.name} ${flag} is in docs/${file}`);
      n++;
    }
  }
  t.ok(n > 50, `${n} flags checked`);
});

t.test('every metric both processes register is in docs/', async (t) => {
  const r = new Registry();
  createAgentMetrics(r);
  createWebhookMetrics(r, { sizes: () => ({}), syncedByResource: () => ({}) });
  createControllerMetrics(r, { queueDepth: () => 0, queueRetrying: () => 0, podsCached: () => 0, isLeader: () => false });
  const names = (await r.getMetricsAsJSON()).map((m) => m.name).sort();
  t.ok(names.length > 25, `${names.length} metrics`);
  for (const name of names) t.ok(new RegExp(`\\b${name}\\b`).test(allDocs), `${name} is in docs/`);
});
