/**
 * ObjectStore: the in-memory half of an informer cache. It holds the current objects of one
 * resource, answers get/list without I/O, and tells subscribers what changed with the old
 * and the new object, which the ListWatch callbacks alone cannot do (they only pass the new
 * one). An informer feeds it (webhook/caches/informer.ts); tests and offline tools fill it from
 * plain object lists with the very same methods, so both paths run the same code.
 */
import type { KubeObject } from '../../core/types.js';

export type ChangeType = 'add' | 'update' | 'delete';

/**
 * One change of one object. `old` is the stored object before the change (undefined for
 * add); for delete, `object` is the last state the watch reported (or the stored one).
 */
export interface ChangeEvent<T> {
  type: ChangeType;
  object: T;
  old: T | undefined;
  /** The resource of the store that changed, e.g. "services". */
  resource: string;
}

export type ChangeHandler<T> = (event: ChangeEvent<T>) => void;

/** Called when a subscriber throws; the store and the other subscribers carry on. */
export type HandlerErrorReporter = (err: unknown, event: ChangeEvent<unknown>) => void;

/** The read side of a store: what resolution and the controller need. */
export interface ReadableStore<T> {
  readonly resource: string;
  /** The object `namespace/name` (`name` alone for cluster-scoped resources). */
  get(name: string, namespace?: string): T | undefined;
  /**
   * All objects (of one namespace when given), sorted by namespace then name. The array
   * for "all namespaces" is reused until the next change, so calling this on every
   * admission request costs nothing; never mutate it.
   */
  list(namespace?: string): readonly T[];
  /** Number of objects held. */
  readonly size: number;
  /** Subscribe to changes; returns the function that unsubscribes. */
  onChange(handler: ChangeHandler<T>): () => void;
  /** True once the first full list has been applied. */
  isSynced(): boolean;
  /** Resolves once the first full list has been applied. */
  readonly synced: Promise<void>;
}

const byName = (a: KubeObject, b: KubeObject): number => {
  const an = a.metadata?.name ?? '';
  const bn = b.metadata?.name ?? '';
  return an < bn ? -1 : an > bn ? 1 : 0;
};

/** An in-memory, namespace-indexed store of one resource with change notifications. */
export class ObjectStore<T extends KubeObject> implements ReadableStore<T> {
  private readonly byNamespace = new Map<string, Map<string, T>>();
  private readonly handlers = new Set<ChangeHandler<T>>();
  private all: readonly T[] | undefined;
  private count = 0;
  private changeCount = 0;
  private syncedFlag = false;
  private resolveSynced!: () => void;
  readonly synced: Promise<void>;

  /**
   * @param resource plural resource name, used in events, metrics and errors.
   * @param report where a throwing subscriber's error goes (default: ignored after the
   *   other subscribers ran, so one bad subscriber never stops the cache).
   */
  constructor(
    readonly resource: string,
    private readonly report: HandlerErrorReporter = () => {},
  ) {
    this.synced = new Promise((resolve) => {
      this.resolveSynced = resolve;
    });
  }

  get size(): number {
    return this.count;
  }

  /**
   * How many changes (adds, updates, deletes) the store has taken so far. Grows with every
   * change, before its subscribers hear of it, so equal counts mean the same content.
   */
  get changes(): number {
    return this.changeCount;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.byNamespace.get(namespace ?? '')?.get(name);
  }

  list(namespace?: string): readonly T[] {
    if (namespace !== undefined) return [...(this.byNamespace.get(namespace)?.values() ?? [])].sort(byName);
    if (!this.all) {
      const nss = [...this.byNamespace.keys()].sort();
      this.all = nss.flatMap((ns) => [...this.byNamespace.get(ns)!.values()].sort(byName));
    }
    return this.all;
  }

  onChange(handler: ChangeHandler<T>): () => void {
    this.handlers.add(handler);
    return () => {
      this.handlers.delete(handler);
    };
  }

  isSynced(): boolean {
    return this.syncedFlag;
  }

  /** Mark the first full list as applied (idempotent). */
  markSynced(): void {
    if (this.syncedFlag) return;
    this.syncedFlag = true;
    this.resolveSynced();
  }

  /**
   * Add or replace an object. Like client-node's ListWatch, an object whose
   * resourceVersion equals the stored one is not a change and emits nothing.
   * Objects without a name are ignored (they cannot be looked up).
   */
  upsert(obj: T): void {
    const name = obj.metadata?.name;
    if (!name) return;
    const ns = obj.metadata?.namespace ?? '';
    let m = this.byNamespace.get(ns);
    if (!m) this.byNamespace.set(ns, (m = new Map()));
    const old = m.get(name);
    const rv = obj.metadata?.resourceVersion;
    if (old && rv !== undefined && old.metadata?.resourceVersion === rv) return;
    m.set(name, obj);
    this.all = undefined;
    this.changeCount++;
    if (!old) this.count++;
    this.emit({ type: old ? 'update' : 'add', object: obj, old, resource: this.resource });
  }

  /** Remove an object (matched by namespace and name); emits nothing if it was not held. */
  remove(obj: T): void {
    const name = obj.metadata?.name;
    if (!name) return;
    const ns = obj.metadata?.namespace ?? '';
    const m = this.byNamespace.get(ns);
    const old = m?.get(name);
    if (!m || !old) return;
    m.delete(name);
    if (m.size === 0) this.byNamespace.delete(ns);
    this.all = undefined;
    this.changeCount++;
    this.count--;
    this.emit({ type: 'delete', object: obj, old, resource: this.resource });
  }

  /**
   * Replace the whole content with `items` (relist semantics): objects not in `items`
   * are deleted, the others added or updated, each with its event. Marks the store synced.
   */
  replace(items: readonly T[]): void {
    const keep = new Set(items.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`));
    for (const [ns, m] of [...this.byNamespace]) {
      for (const [name, obj] of [...m]) if (!keep.has(`${ns}/${name}`)) this.remove(obj);
    }
    for (const o of items) this.upsert(o);
    this.markSynced();
  }

  private emit(event: ChangeEvent<T>): void {
    for (const h of [...this.handlers]) {
      try {
        h(event);
      } catch (err) {
        this.report(err, event as ChangeEvent<unknown>);
      }
    }
  }
}
