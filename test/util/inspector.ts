/**
 * A minimal client of the V8 inspector protocol over its WebSocket, for measuring another
 * Node process's memory: a child started with `--inspect=127.0.0.1:<port>` (see
 * `inspectArgs`) is asked to collect garbage, then for `process.memoryUsage()`, so the heap
 * figure is the live heap after a full GC rather than RSS, which is a sawtooth that also grows
 * with V8's heap sizing. `heapSnapshot` takes a snapshot and counts objects by constructor.
 * Used by the soak only (`npm run soak`), never by `npm test`: the flag opens a debugger port.
 */
import { freePort, httpGet } from './http.js';

/** `process.memoryUsage()` of the inspected process right after a full GC, in bytes. */
export interface LiveMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** A node flag opening the inspector on a loopback port picked here. */
export async function inspectArgs(): Promise<{ port: number; args: string[] }> {
  const port = await freePort();
  return { port, args: [`--inspect=127.0.0.1:${port}`] };
}

export class Inspector {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; method: string }>();
  private readonly chunks = new Map<string, (params: any) => void>();
  private constructor(
    private readonly ws: WebSocket,
    readonly what: string,
  ) {
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: any; error?: { message: string }; method?: string; params?: any };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`${what}: inspector ${p.method} failed: ${msg.error.message}`));
        else p.resolve(msg.result);
      } else if (msg.method) this.chunks.get(msg.method)?.(msg.params);
    });
    ws.addEventListener('close', () => {
      for (const p of this.pending.values()) p.reject(new Error(`${what}: inspector connection closed during ${p.method}`));
      this.pending.clear();
    });
  }

  /** Connects to the inspector of the process listening on `port` (its first target). */
  static async connect(port: number, what: string, timeoutMs = 30_000): Promise<Inspector> {
    const deadline = Date.now() + timeoutMs;
    let url: string | undefined;
    let last = '';
    while (!url) {
      try {
        const res = await httpGet(port, '/json/list');
        url = (JSON.parse(res.body) as { webSocketDebuggerUrl?: string }[])[0]?.webSocketDebuggerUrl;
        if (!url) last = `no target in ${res.body.slice(0, 200)}`;
      } catch (e) {
        last = (e as Error).message;
      }
      if (!url) {
        if (Date.now() > deadline) throw new Error(`${what}: no inspector on 127.0.0.1:${port} after ${timeoutMs} ms (${last})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`${what}: cannot open the inspector WebSocket ${url}`)), { once: true });
    });
    return new Inspector(ws, what);
  }

  send<T = any>(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.what}: inspector ${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Evaluates `expr` in the inspected process's main context and returns its JSON value. */
  async evaluate<T>(expr: string): Promise<T> {
    const r = await this.send<{ result: { value?: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', {
      expression: expr,
      returnByValue: true,
    });
    if (r.exceptionDetails) throw new Error(`${this.what}: evaluating ${expr}: ${r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** A full GC, then `process.memoryUsage()`: the live heap, not the sawtooth. */
  async liveMemory(): Promise<LiveMemory> {
    await this.send('HeapProfiler.collectGarbage');
    return this.evaluate<LiveMemory>('process.memoryUsage()');
  }

  /**
   * A heap snapshot (taken after a GC, as V8 always does), reduced to object counts and
   * self sizes by constructor name: enough to diff an early snapshot against a late one.
   */
  async heapCounts(): Promise<Map<string, { count: number; size: number }>> {
    let text = '';
    this.chunks.set('HeapProfiler.addHeapSnapshotChunk', (p: { chunk: string }) => {
      text += p.chunk;
    });
    try {
      await this.send('HeapProfiler.enable');
      await this.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 300_000);
      await this.send('HeapProfiler.disable');
    } finally {
      this.chunks.delete('HeapProfiler.addHeapSnapshotChunk');
    }
    return countByConstructor(JSON.parse(text));
  }

  close(): void {
    this.ws.close();
  }
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Object counts and self sizes by name (a constructor's, or the node type for internals). */
export function countByConstructor(s: Snapshot): Map<string, { count: number; size: number }> {
  const f = s.snapshot.meta.node_fields;
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    const key =
      type === 'object' || type === 'closure' ? `${type === 'closure' ? 'fn ' : ''}${s.strings[s.nodes[i + iName]!]}` : `(${type})`;
    const e = out.get(key) ?? { count: 0, size: 0 };
    e.count++;
    e.size += s.nodes[i + iSize]!;
    out.set(key, e);
  }
  return out;
}
