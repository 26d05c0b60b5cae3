import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { decodePlan, parsePlanKey, type PlanKey } from '../../core/plan-codec.js';
import { checkNetnsPath, DEFAULT_NETNS_DIR, isNetnsError } from '../../injector/kernel/netns.js';
import { applyPlan, RTPROT_OVNKUBE_ROUTE, type ApplyResult, type RouteItem } from '../../injector/routes/engine.js';
import { SavedDefaultStore } from '../../injector/routes/saved.js';
import { describeSymmetric } from '../../injector/routes/symmetric.js';
import { InputError, parseFlags, UsageError, type Command } from '../cli.js';
import { readInput } from '../io.js';

const DEFAULT_STATE_DIR = '/var/lib/ovnkube-route/inject';

const help = `Usage: ovnkube-route inject --netns PATH --plan FILE|- [--key FILE --namespace NS]
                            [--netns-dir DIR] [--state-dir DIR] [-o text|json]

Apply a route plan to one network namespace, the way the node agent does, and print what
changed. Only the exact difference is written: missing routes are added, routes of ours
(rtnetlink protocol ${RTPROT_OVNKUBE_ROUTE}) that the plan no longer has are deleted, changed ones are
replaced. Routes installed by the CNIs are never touched, except the default route when the
plan sets one. A second run with the same plan changes nothing.

--plan takes the plan JSON exactly as "ovnkube-route plan" prints it (the value of the pod
annotation routes.k8s.ovn.org/plan). An unsigned plan is accepted (the operator is root). A
plan that carries a signature must verify: give the plan key with --key and the pod's
namespace with --namespace; a signature without --key, or one that does not verify, is refused.

The default route: before a plan's default route replaces the netns's original one, the
original is saved in --state-dir (one file per netns). Applying a plan without a default
route puts the saved original back.

Flags:
      --netns PATH       the netns to write (e.g. /var/run/netns/cni-...)
      --plan FILE        the plan JSON ("-" for stdin)
      --key FILE         plan key (base64 of at least 32 bytes) to verify a signed plan
      --namespace NS     the pod's namespace, which the signature is bound to
      --netns-dir DIR    refuse a netns whose realpath is outside DIR (default ${DEFAULT_NETNS_DIR})
      --state-dir DIR    where original default routes are saved (default ${DEFAULT_STATE_DIR})
  -o, --output FORMAT    text (default) or json (the full apply result)
  -h, --help             show this help

Exit status: 0 every route of the plan is in place; 3 applied, but some routes were skipped
(listed with the reason: missing device, collision, unreachable gateway); 1 refused or failed;
2 bad usage.
`;

function fmt(r: RouteItem): string {
  return (
    `${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.src ? ` src ${r.src}` : ''}` +
    `${r.metric !== undefined ? ` metric ${r.metric}` : ''}${r.mtu !== undefined ? ` mtu ${r.mtu}` : ''}${r.advmss !== undefined ? ` advmss ${r.advmss}` : ''}`
  );
}

/** Human-readable report of an apply. */
export function formatApplyResult(res: ApplyResult): string {
  const lines: string[] = [];
  for (const r of res.added) lines.push(`added     ${fmt(r)}`);
  for (const r of res.replaced) lines.push(`replaced  ${fmt(r)} (was ${fmt(r.from)})`);
  for (const r of res.restored) lines.push(`restored  ${fmt(r)} (original default route)`);
  for (const r of res.removed) lines.push(`removed   ${fmt(r)}`);
  // Symmetric return paths (docs/routing.md): rules and the routes of their tables.
  for (const r of res.symmetric?.added ?? []) lines.push(`added     ${describeSymmetric(r)} (symmetric ${r.dev ?? ''})`.trimEnd());
  for (const r of res.symmetric?.removed ?? []) lines.push(`removed   ${describeSymmetric(r)} (symmetric)`);
  for (const r of res.skipped) lines.push(`skipped   ${fmt(r)}: ${r.reason}: ${r.detail}`);
  const n = (x: unknown[]): number => x.length;
  const summary = res.changed
    ? `${n(res.added)} added, ${n(res.replaced)} replaced, ${n(res.restored)} restored, ${n(res.removed)} removed, ${n(res.unchanged)} unchanged, ${n(res.skipped)} skipped`
    : `nothing changed: ${n(res.unchanged)} routes already in place${res.skipped.length ? `, ${n(res.skipped)} skipped` : ''}`;
  lines.push(`netns ${res.netns}: ${summary}`);
  return lines.join('\n') + '\n';
}

/** Whether the plan text carries a "sig" field (malformed JSON is left to decodePlan to report). */
function hasSignature(text: string): boolean {
  try {
    const o = JSON.parse(text) as unknown;
    return typeof o === 'object' && o !== null && 'sig' in o;
  } catch {
    return false;
  }
}

async function readKey(file: string): Promise<PlanKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new InputError(`${file}: cannot read plan key: ${(e as Error).message}`, { cause: e });
  }
  try {
    return parsePlanKey(text);
  } catch (e) {
    throw new InputError(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

export const injectCommand: Command = {
  name: 'inject',
  summary: 'apply a route plan to one netns and print what changed',
  help,
  async run(argv, io) {
    const values = parseFlags(argv, {
      netns: { type: 'string' },
      plan: { type: 'string' },
      key: { type: 'string' },
      namespace: { type: 'string' },
      'netns-dir': { type: 'string', default: DEFAULT_NETNS_DIR },
      'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
      output: { type: 'string', short: 'o', default: 'text' },
    });
    if (!values.netns) throw new UsageError('--netns PATH is required');
    if (!values.plan) throw new UsageError('--plan FILE|- is required');
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError(`--output must be text or json, got "${values.output}"`);
    const keys = values.key ? [await readKey(values.key)] : [];
    const text = (await readInput(values.plan, io)).trim();
    const source = values.plan === '-' ? '<stdin>' : values.plan;
    const signed = hasSignature(text);
    if (signed && !keys.length)
      throw new InputError(
        `${source}: the plan carries a signature; give --key FILE (and --namespace NS) to verify it, or pass an unsigned plan`,
      );
    if (signed && values.namespace === undefined)
      throw new InputError(`${source}: the plan carries a signature, which is bound to the pod's namespace; give --namespace NS`);
    const decoded = decodePlan(text, { namespace: values.namespace ?? '', keys, requireSignature: false });
    if (!decoded.ok) throw new InputError(`${source}: refused: ${decoded.error} (${decoded.code})`);

    const policy = { netnsDir: values['netns-dir'] };
    let store: SavedDefaultStore;
    try {
      const { realPath, id } = checkNetnsPath(values.netns, policy);
      store = new SavedDefaultStore(values['state-dir'], `${basename(realPath).replace(/[^A-Za-z0-9._-]/g, '_')}.${id.ino}`);
    } catch (e) {
      if (isNetnsError(e)) throw new InputError(e.message);
      throw e;
    }
    let res: ApplyResult;
    try {
      res = await applyPlan(values.netns, decoded.plan, {
        policy,
        savedDefault: store.load(),
        saveDefault: (s) => store.save(s),
        forgetDefault: (f) => store.forget(f),
      });
    } catch (e) {
      if (isNetnsError(e)) throw new InputError(e.message);
      throw e;
    }
    io.stdout.write(values.output === 'json' ? JSON.stringify(res, null, 2) + '\n' : formatApplyResult(res));
    return res.skipped.length ? 3 : 0;
  },
};
