/**
 * The agent's side of CNI-time injection: a unix socket that the ovnkube-route CNI plugin
 * (cni/ovnkube-route-cni.c), chained after the pod's networks, calls during CNI ADD. One
 * JSON line in, one JSON line out:
 *   -> {"v":1,"command":"ADD","containerId":"<sandbox ID>","netns":"/var/run/netns/cni-...",
 *       "ifName":"eth0","namespace":"ns","name":"pod","uid":"..."}
 *   <- {"ok":true,"plan":"<hash>","applied":5,"skipped":0} | {"ok":false,"reason":"..."}
 * The handler (Agent.cniAdd) answers once the pod's plan is in its netns, or why not, before
 * its deadline; the plugin fails open whatever it gets. The socket is root-only (0600 in a
 * 0700 dir): only the container runtime, running the plugin as root, can call it; the netns
 * it names is still checked like any other (inside the netns dir, not the host's).
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../../platform/log.js';

export interface CniRequest {
  containerId: string;
  netns: string;
  ifName: string;
  namespace: string;
  name: string;
  uid: string;
}

export type CniAnswer = { ok: true; plan: string; applied: number; skipped: number } | { ok: false; reason: string };

/** Longest request line accepted (a real one is a few hundred bytes). */
const MAX_REQUEST = 16 * 1024;

/** Parse and check one request line; a string is what is wrong with it. */
export function parseCniRequest(line: string): CniRequest | string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'expected a JSON object';
  if (o.v !== 1) return `unsupported protocol version ${JSON.stringify(o.v)} (expected 1)`;
  if (o.command !== 'ADD') return `unsupported command ${JSON.stringify(o.command)} (expected "ADD")`;
  const str = (k: string): string | null => (typeof o[k] === 'string' ? (o[k] as string) : null);
  const req = {
    containerId: str('containerId'),
    netns: str('netns'),
    ifName: str('ifName') ?? '',
    namespace: str('namespace'),
    name: str('name'),
    uid: str('uid'),
  };
  if (!req.containerId || !/^[A-Za-z0-9_.-]{1,128}$/.test(req.containerId))
    return 'containerId: expected the sandbox ID (1-128 of A-Z a-z 0-9 _ . -)';
  if (!req.netns || !req.netns.startsWith('/')) return 'netns: expected an absolute netns path';
  if (!req.namespace || !req.name) return "namespace and name: expected the pod's (K8S_POD_NAMESPACE, K8S_POD_NAME)";
  if (!req.uid) return "uid: expected the pod's UID (K8S_POD_UID)";
  return req as CniRequest;
}

export interface CniServerOptions {
  path: string;
  log: Logger;
  /** Answer one request (never rejects in practice; a rejection is answered as ok:false). */
  handle: (req: CniRequest) => Promise<CniAnswer>;
}

/** The unix socket server. start() binds (replacing a stale socket file); close() unbinds. */
export class CniServer {
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();

  constructor(private readonly o: CniServerOptions) {}

  async start(): Promise<void> {
    const { path } = this.o;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      if (lstatSync(path).isSocket())
        unlinkSync(path); // left by an agent that died
      else throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const server = createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    this.server = server;
  }

  private serve(sock: Socket): void {
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    let done = false;
    const answer = (a: CniAnswer) => {
      if (!sock.destroyed) sock.end(JSON.stringify(a) + '\n');
    };
    sock.on('data', (d: Buffer) => {
      if (done) return;
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > MAX_REQUEST) {
          done = true;
          answer({ ok: false, reason: `request longer than ${MAX_REQUEST} bytes` });
        }
        return;
      }
      done = true;
      const req = parseCniRequest(buf.slice(0, nl));
      if (typeof req === 'string') {
        this.o.log.warn({ error: req }, 'bad CNI request');
        answer({ ok: false, reason: `bad request: ${req}` });
        return;
      }
      this.o.handle(req).then(answer, (e: unknown) => answer({ ok: false, reason: `agent error: ${(e as Error).message}` }));
    });
  }

  /** Stop listening, end open connections, remove the socket file. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => s.close(() => r()));
    try {
      unlinkSync(this.o.path);
    } catch {
      /* gone */
    }
  }
}
