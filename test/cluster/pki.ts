import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of every key and certificate the control plane needs (all under one folder). */
export interface ControlPlanePKI {
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  etcdCert: string;
  etcdKey: string;
  etcdClientCert: string;
  etcdClientKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

// Keys live only as long as the control plane (two days at most), so P-256 and a short
// validity are enough; EC keeps openssl fast on a 2-core machine.
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = ['-days', '2'];

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error('the openssl command is needed to make the control plane certificates (apt-get install openssl)');
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * Issue a certificate from the control plane's CA: `<dir>/<name>.crt` and `.key`, with the
 * given subject and extra X.509v3 extensions (e.g. 'subjectAltName=IP:127.0.0.1'). Tests
 * use it for webhook serving certs the apiserver trusts through `caBundle: caPem`.
 */
export async function issueCert(
  pki: Pick<ControlPlanePKI, 'caCert' | 'caKey'>,
  dir: string,
  name: string,
  subj: string,
  ext: string[],
): Promise<[cert: string, key: string]> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await openssl([
    'req',
    '-x509',
    '-CA',
    pki.caCert,
    '-CAkey',
    pki.caKey,
    ...KEY,
    ...DAYS,
    '-keyout',
    key,
    '-out',
    cert,
    '-subj',
    subj,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    ...ext.flatMap((e) => ['-addext', e]),
  ]);
  return [cert, key];
}

/**
 * Create a throwaway CA and every certificate of a loopback control plane in `dir`:
 * serving certs for kube-apiserver and etcd (127.0.0.1/localhost), the apiserver's etcd
 * client cert, an admin client cert in system:masters, and the service-account signing key.
 */
export async function makePKI(dir: string, extraApiserverSans: string[] = []): Promise<ControlPlanePKI> {
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await openssl([
    'req',
    '-x509',
    ...KEY,
    ...DAYS,
    '-keyout',
    caKey,
    '-out',
    caCert,
    '-subj',
    '/CN=ovnkube-route test control plane CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const loopback = 'subjectAltName=IP:127.0.0.1,DNS:localhost';
  const ca = { caCert, caKey };
  const leaf = (name: string, subj: string, ext: string[]) => issueCert(ca, dir, name, subj, ext);
  const saKey = join(dir, 'sa.key');
  const saPub = join(dir, 'sa.pub');
  const [[apiserverCert, apiserverKey], [etcdCert, etcdKey], [etcdClientCert, etcdClientKey], [adminCert, adminKey]] = await Promise.all([
    leaf('apiserver', '/CN=kube-apiserver', [
      `${loopback},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local` +
        extraApiserverSans.map((s) => `,${s}`).join(''),
      'extendedKeyUsage=serverAuth',
    ]),
    // etcd presents this one to clients and to itself as a peer.
    leaf('etcd', '/CN=etcd', [loopback, 'extendedKeyUsage=serverAuth,clientAuth']),
    leaf('etcd-client', '/CN=kube-apiserver-etcd-client', ['extendedKeyUsage=clientAuth']),
    // system:masters is bound to cluster-admin by the RBAC bootstrap policy.
    leaf('admin', '/O=system:masters/CN=ovnkube-route-admin', ['extendedKeyUsage=clientAuth']),
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', saKey]).then(() =>
      openssl(['pkey', '-in', saKey, '-pubout', '-out', saPub]),
    ),
  ]);
  return {
    caCert,
    caKey,
    apiserverCert,
    apiserverKey,
    etcdCert,
    etcdKey,
    etcdClientCert,
    etcdClientKey,
    adminCert,
    adminKey,
    saKey,
    saPub,
  };
}
