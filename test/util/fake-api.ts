// Loopback stand-ins for an API server, for the deadline and watchdog tests:
//
// - SwitchableFront: a TCP server on 127.0.0.1 port 0 that a kubeconfig points at. In
//   'silent' mode it accepts connections and never answers (the fault of issue #16); in
//   'forward' mode it pipes new connections to a backend (a FakeApi, or a real
//   kube-apiserver: TLS passes through untouched). Connections accepted while silent stay
//   silent: the client has to give up on them by itself.
// - FakeApi: a plain-HTTP server answering list and watch requests of any resource path
//   from an in-memory object list. Watches get the events pushed with `emit()`; with
//   `watchSilent` a watch answers its headers and then never sends a byte.
import { KubeConfig } from '@kubernetes/client-node';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';

export class SwitchableFront {
  mode: 'silent' | 'forward' = 'silent';
  /** Connections accepted so far (evidence that a client tried). */
  accepted = 0;
  /** Silent connections the client closed (evidence that it gave up on them). */
  silentClosed = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((sock) => {
    this.accepted++;
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    if (this.mode === 'silent') {
      // Read and drop what the client sends (so its close is seen), never answer.
      sock.resume();
      sock.on('close', () => {
        this.silentClosed++;
      });
      return;
    }
    const up = connect(this.target.port, this.target.host);
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
    up.on('close', () => sock.destroy());
    sock.on('close', () => up.destroy());
    sock.pipe(up).pipe(sock);
    this.pairs.add([sock, up]);
    sock.on('close', () => {
      for (const p of this.pairs) if (p[0] === sock) this.pairs.delete(p);
    });
  });
  private readonly pairs = new Set<[Socket, Socket]>();

  constructor(private target: { host: string; port: number } = { host: '127.0.0.1', port: 1 }) {}

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }

  /**
   * Make the endpoint silent, established connections included: forwarding stops both ways
   * (nothing is closed; the bytes just stop), and new connections get no answer.
   */
  freeze(): void {
    this.mode = 'silent';
    for (const [a, b] of this.pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    }
  }

  forwardTo(target: { host: string; port: number }): void {
    this.target = target;
    this.mode = 'forward';
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface FakeObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export class FakeApi {
  /** Objects by resource path (e.g. /api/v1/pods). Unknown paths list as empty. */
  readonly objects = new Map<string, FakeObject[]>();
  /** When true, a watch sends its headers and then nothing. */
  watchSilent = false;
  /** When true, a watch ends at once without an event (a server closing every watch). */
  watchEndsAtOnce = false;
  lists = 0;
  watches = 0;
  private rv = 100;
  private readonly open = new Set<{ path: string; res: ServerResponse }>();
  private readonly server: Server = createHttpServer((req, res) => this.handle(req, res));

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Add an object and send it as an event to the open watches of `path`. */
  emit(path: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: FakeObject): void {
    const o = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    const list = this.objects.get(path) ?? [];
    this.objects.set(path, [...list.filter((x) => x.metadata.name !== o.metadata.name), ...(type === 'DELETED' ? [] : [o])]);
    for (const w of this.open) if (w.path === path) w.res.write(JSON.stringify({ type, object: o }) + '\n');
  }

  /** Open watches right now. */
  get openWatches(): number {
    return this.open.size;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (url.searchParams.get('watch') === 'true') {
      this.watches++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      if (this.watchEndsAtOnce) {
        res.end();
        return;
      }
      if (this.watchSilent) {
        res.on('close', () => {});
        return;
      }
      const w = { path, res };
      this.open.add(w);
      res.on('close', () => this.open.delete(w));
      return;
    }
    this.lists++;
    const items = this.objects.get(path) ?? [];
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items }));
  }

  async close(): Promise<void> {
    for (const w of this.open) w.res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A KubeConfig for http://127.0.0.1:port (plain HTTP needs skipTLSVerify in client-node). */
export function loopbackKubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'loop', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'loop', cluster: 'loop', user: 'u' }],
    currentContext: 'loop',
  });
  return kc;
}
