/**
 * Serving certificate loading and hot reload. The cert and key files are watched and, when
 * they change, swapped in with `server.setSecureContext()`: new TLS handshakes use the new
 * pair, connections already open keep theirs, so nothing is dropped.
 *
 * Kubernetes updates a mounted Secret by writing a new hidden directory and renaming the
 * `..data` symlink, which a watch on the files themselves never sees; so the directories
 * are watched, and a periodic check backs that up on filesystems where fs.watch is
 * unreliable. A pair that does not load (half-written, key not matching the cert) is
 * reported and the previous pair stays in use.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { WebhookError } from '../errors.js';
import { errorMessage, withCause } from '../../platform/errors.js';

export interface ServingCert {
  cert: Buffer;
  key: Buffer;
  /** notAfter of the leaf certificate. */
  notAfter: Date;
  /** SHA-256 fingerprint of the leaf certificate, as X509Certificate prints it. */
  fingerprint: string;
}

/** Read and check a cert/key pair. Throws WebhookError OVNKR_ERR_TLS_FILES naming the file and the problem. */
export async function loadServingCert(certFile: string, keyFile: string): Promise<ServingCert> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  } catch (e) {
    throw new WebhookError('OVNKR_ERR_TLS_FILES', errorMessage(e), { cause: e });
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new WebhookError('OVNKR_ERR_TLS_FILES', `${certFile}: expected a PEM certificate (${errorMessage(e)})`, { cause: e });
  }
  try {
    // Fails when the key is not PEM or does not belong to the certificate.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new WebhookError('OVNKR_ERR_TLS_FILES', withCause(`${keyFile} does not load with ${certFile}`, e), { cause: e });
  }
  return { cert, key, notAfter: new Date(x509.validTo), fingerprint: x509.fingerprint256 };
}

export interface CertWatchOptions {
  /** The https server (fastify's `app.server`). */
  server: { setSecureContext(options: SecureContextOptions): void };
  certFile: string;
  keyFile: string;
  /** The pair currently served, so an unchanged pair is not reloaded. */
  current?: ServingCert;
  minVersion?: SecureVersion;
  /** Safety-net re-check interval. Default 30 s. */
  pollIntervalMs?: number;
  /** Wait after a file event so a cert and key written one after the other load together. Default 100 ms. */
  debounceMs?: number;
  onReload?(cert: ServingCert): void;
  onError?(err: Error): void;
}

export interface CertWatcher {
  /** Check the files now; resolves true when a new pair was put in use. */
  check(): Promise<boolean>;
  close(): void;
}

const digest = (c: Buffer, k: Buffer): string => createHash('sha256').update(c).update('\0').update(k).digest('hex');

/** Watch the serving cert/key files and reload them into `server` when they change. */
export function watchServingCert(opts: CertWatchOptions): CertWatcher {
  let served = opts.current ? digest(opts.current.cert, opts.current.key) : '';
  let failed = '';
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  let running: Promise<boolean> | undefined;

  const checkOnce = async (): Promise<boolean> => {
    let pair: ServingCert;
    try {
      pair = await loadServingCert(opts.certFile, opts.keyFile);
    } catch (e) {
      // Report a broken pair once, not on every poll; it is retried on the next change.
      const msg = (e as Error).message;
      if (msg !== failed) {
        failed = msg;
        opts.onError?.(e as Error);
      }
      return false;
    }
    failed = '';
    const d = digest(pair.cert, pair.key);
    if (d === served || closed) return false;
    try {
      opts.server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: opts.minVersion ?? 'TLSv1.2' });
    } catch (e) {
      opts.onError?.(new WebhookError('OVNKR_ERR_TLS_FILES', withCause('setSecureContext failed', e), { cause: e }));
      return false;
    }
    served = d;
    opts.onReload?.(pair);
    return true;
  };
  // Serialise checks: a watch event during a check runs another one after it.
  const check = (): Promise<boolean> => {
    const next = (running ?? Promise.resolve(false)).then(checkOnce, checkOnce);
    running = next;
    return next;
  };

  const schedule = () => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void check(), opts.debounceMs ?? 100);
    debounce.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(opts.certFile), dirname(opts.keyFile)])) {
    try {
      const w = watch(dir, { persistent: false }, schedule);
      w.on('error', (e) =>
        opts.onError?.(new WebhookError('OVNKR_ERR_TLS_FILES', `watching ${dir}: ${e.message}; relying on the periodic check`)),
      );
      watchers.push(w);
    } catch (e) {
      opts.onError?.(
        new WebhookError('OVNKR_ERR_TLS_FILES', `${withCause(`cannot watch ${dir}`, e)}; relying on the periodic check`, { cause: e }),
      );
    }
  }
  const poll = setInterval(() => void check(), opts.pollIntervalMs ?? 30_000);
  poll.unref();

  return {
    check,
    close() {
      closed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
