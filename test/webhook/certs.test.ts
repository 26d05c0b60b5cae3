// certs/gen.sh: what it makes (CA, serving pair with the Service DNS names, plan key),
// file modes, re-runs (CA and plan key kept, serving pair renewed), --new-ca, and refusals.
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parsePlanKey } from '../../core/plan-codec.js';
import { genCerts, genScript } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'ovnkube-route-certs-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const read = (dir: string, f: string) => readFileSync(join(dir, f));
const mode = (dir: string, f: string) => (statSync(join(dir, f)).mode & 0o777).toString(8);

t.test('a fresh run makes a CA, a serving pair for the Service names and a plan key', async (t) => {
  const dir = join(root, 'fresh');
  const { stdout } = await genCerts(dir);
  const ca = new X509Certificate(read(dir, 'ca.crt'));
  const leaf = new X509Certificate(read(dir, 'tls.crt'));
  t.ok(ca.ca, 'ca.crt is a CA');
  t.notOk(leaf.ca, 'tls.crt is not');
  t.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
  t.ok(leaf.checkPrivateKey(createPrivateKey(read(dir, 'tls.key'))), 'tls.key belongs to tls.crt');
  for (const name of [
    'ovnkube-route-webhook',
    'ovnkube-route-webhook.ovnkube-route',
    'ovnkube-route-webhook.ovnkube-route.svc',
    'ovnkube-route-webhook.ovnkube-route.svc.cluster.local',
  ]) {
    t.equal(leaf.checkHost(name), name, `valid for ${name}`);
  }
  t.equal(leaf.checkHost('ovnkube-route-webhook.default.svc'), undefined, 'not for another namespace');
  t.equal(leaf.checkIP('127.0.0.1'), undefined, 'no IP SAN unless asked for');
  t.same(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage: serverAuth only');
  t.ok(new Date(leaf.validTo).getTime() > Date.now() + 300 * 86400_000, 'valid for about a year');
  const key = parsePlanKey(read(dir, 'plan.key').toString());
  t.equal(key.secret.length, 32, 'plan key: 32 random bytes, base64');
  t.equal(
    Buffer.from(read(dir, 'ca-bundle.b64').toString(), 'base64').toString(),
    read(dir, 'ca.crt').toString(),
    'ca-bundle.b64 is ca.crt in base64',
  );
  for (const f of ['ca.key', 'tls.key', 'plan.key']) t.equal(mode(dir, f), '600', `${f} is mode 0600`);
  for (const f of ['ca.crt', 'tls.crt']) t.equal(mode(dir, f), '644', `${f} is mode 0644`);
  t.match(stdout, 'kubectl -n ovnkube-route create secret tls ovnkube-route-webhook-tls', 'prints how to create the serving Secret');
  t.match(stdout, 'create secret generic ovnkube-route-plan-key --from-file=plan.key=', 'and the plan key Secret');
  t.match(stdout, 'kubectl patch mutatingwebhookconfiguration ovnkube-route', 'and how to set the caBundle');
});

t.test('a re-run keeps the CA and the plan key and renews the serving pair; --new-ca makes a new CA', async (t) => {
  const dir = join(root, 'rerun');
  await genCerts(dir, ['--san', 'IP:127.0.0.1']);
  const [ca1, leaf1, plan1] = [read(dir, 'ca.crt'), read(dir, 'tls.crt'), read(dir, 'plan.key')];
  const { stderr } = await genCerts(dir, ['--san', 'IP:127.0.0.1']);
  t.match(stderr, /reusing the CA/);
  t.match(stderr, /keeping the existing plan key/);
  t.same(read(dir, 'ca.crt'), ca1, 'same CA, so the caBundle stays valid');
  t.same(read(dir, 'plan.key'), plan1, 'the plan key is never replaced');
  t.notSame(read(dir, 'tls.crt'), leaf1, 'a new serving certificate');
  t.ok(new X509Certificate(read(dir, 'tls.crt')).checkIssued(new X509Certificate(ca1)), 'signed by the same CA');
  await genCerts(dir, ['--new-ca']);
  t.notSame(read(dir, 'ca.crt'), ca1, '--new-ca: a new CA');
  t.same(read(dir, 'plan.key'), plan1, 'the plan key is still kept');
  t.ok(new X509Certificate(read(dir, 'tls.crt')).checkIssued(new X509Certificate(read(dir, 'ca.crt'))), 'the pair is signed by the new CA');
});

t.test('--service, --namespace and --san shape the names', async (t) => {
  const dir = join(root, 'custom');
  await genCerts(dir, ['--service', 'hook', '--namespace', 'net-system', '--san', 'IP:127.0.0.1', '--san', 'DNS:localhost', '--days', '2']);
  const leaf = new X509Certificate(read(dir, 'tls.crt'));
  t.equal(leaf.checkHost('hook.net-system.svc'), 'hook.net-system.svc');
  t.equal(leaf.checkHost('hook.net-system.svc.cluster.local'), 'hook.net-system.svc.cluster.local');
  t.equal(leaf.checkHost('localhost'), 'localhost');
  t.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
  t.ok(new Date(leaf.validTo).getTime() < Date.now() + 3 * 86400_000, '--days 2');
});

t.test('bad invocations are refused with exit code 2 and a message, writing nothing', async (t) => {
  const run = promisify(execFile);
  const cases: [string, string[], RegExp][] = [
    ['no OUTDIR', [], /Usage: certs\/gen.sh OUTDIR/],
    ['two OUTDIRs', [join(root, 'a'), join(root, 'b')], /only one OUTDIR/],
    ['an unknown flag', [join(root, 'a'), '--ca-days', '3'], /unknown flag --ca-days/],
    ['a bad SAN', [join(root, 'a'), '--san', '127.0.0.1'], /expected DNS:<name> or IP:<address>/],
    ['a bad namespace', [join(root, 'a'), '--namespace', 'Not_A_Namespace'], /expected a DNS-1123 label/],
    ['a bad service', [join(root, 'a'), '--service', '9svc'], /expected a DNS-1035 label/],
    ['bad days', [join(root, 'a'), '--days', '0'], /expected a whole number of days/],
    ['a flag without its value', [join(root, 'a'), '--san'], /--san needs a value/],
  ];
  for (const [what, args, msg] of cases) {
    const err = await run(genScript, args).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    t.equal(err?.code, 2, `${what}: exit 2`);
    t.match(err?.stderr, msg, `${what}: says why`);
  }
  t.throws(() => statSync(join(root, 'a')), { code: 'ENOENT' }, 'nothing was written');
});
