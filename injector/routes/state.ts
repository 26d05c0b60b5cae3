/**
 * The agent's durable state on the node. Layout:
 *
 *   <state-dir>/agent/defaults/<pod UID>.<netns name>.default-v4.json
 *   <state-dir>/agent/defaults/<pod UID>.<netns name>.default-v6.json
 *
 * Each file is the original default route of one pod sandbox, saved (SavedDefaultStore,
 * written atomically and durably) before the plan's default route replaced it, and
 * removed once it has been put back. The key names the pod (UID) and the sandbox (netns
 * file name): a pod whose sandbox is recreated gets a new netns and a new key, and the
 * old key's original is not applied to a namespace it never came from.
 *
 * Nothing else is kept: which routes are ours is in the kernel (the protocol number),
 * and which plan applies is on the pod. Entries are removed when the pod is deleted or its
 * netns vanishes, and, at start, when no pod of this node has their UID.
 */
import { readdirSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SavedDefaultStore } from './saved.js';
import type { SavedDefault } from './engine.js';

const FILE_RE = /^([A-Za-z0-9_-]+)\.(.+)\.default-v[46]\.json$/;

/** Saved-default storage of all pod sandboxes of this node. */
export class AgentState {
  readonly defaultsDir: string;

  constructor(readonly stateDir: string) {
    this.defaultsDir = join(stateDir, 'agent', 'defaults');
  }

  /** The key of a pod sandbox: "<uid>.<netns file name>" with unsafe characters replaced. */
  keyFor(uid: string, netnsPath: string): string {
    const safeUid = uid.replace(/[^A-Za-z0-9-]/g, '_') || '_';
    return `${safeUid}.${basename(netnsPath).replace(/[^A-Za-z0-9._-]/g, '_')}`.slice(0, 200);
  }

  /** The store of one sandbox (SavedDefaultStore: load/save/forget). */
  store(key: string): SavedDefaultStore {
    return new SavedDefaultStore(this.defaultsDir, key);
  }

  /**
   * What is saved for `key`. A corrupt file cannot be trusted to restore anything: it is
   * moved aside (<file>.corrupt, for the operator) and the error returned with nothing saved.
   */
  load(key: string): { saved: SavedDefault[]; error?: string } {
    const store = this.store(key);
    try {
      return { saved: store.load() };
    } catch (e) {
      const error = (e as Error).message;
      for (const f of [4, 6]) {
        const file = join(this.defaultsDir, `${key}.default-v${f}.json`);
        try {
          renameSync(file, `${file}.corrupt`);
        } catch {
          /* absent or already moved */
        }
      }
      return { saved: [], error };
    }
  }

  /** Remove everything saved for `key`. */
  remove(key: string): void {
    const store = this.store(key);
    store.forget(4);
    store.forget(6);
  }

  /** Every key with a saved file, with the pod UID it belongs to. */
  keys(): { key: string; uid: string }[] {
    let names: string[];
    try {
      names = readdirSync(this.defaultsDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out = new Map<string, string>();
    for (const n of names) {
      const m = FILE_RE.exec(n);
      if (m) out.set(`${m[1]}.${m[2]}`, m[1]!);
    }
    return [...out].map(([key, uid]) => ({ key, uid }));
  }

  /** Remove the entries of pods not in `liveUids` (at start, once the pod list is in). Returns the keys removed. */
  collect(liveUids: ReadonlySet<string>, keep: ReadonlySet<string> = new Set()): string[] {
    const removed: string[] = [];
    for (const { key, uid } of this.keys()) {
      if (liveUids.has(uid) || keep.has(key)) continue;
      this.remove(key);
      removed.push(key);
    }
    return removed;
  }
}
