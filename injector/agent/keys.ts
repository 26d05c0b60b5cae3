/**
 * The plan key ring of the agent: the key files given with --plan-key, read at start and
 * read again when they change (a Secret volume is updated in place by the kubelet), so a
 * key rotation (add the new key everywhere, then let the webhook sign with it) needs no
 * restart. A file that cannot be read or parsed on reload keeps the keys already loaded
 * and is reported; at start it is an error.
 */
import { readFileSync, statSync } from 'node:fs';
import { parsePlanKey, type PlanKey } from '../../core/plan-codec.js';
import type { Logger } from '../../platform/log.js';
import { withCause } from '../../platform/errors.js';

/** Read and parse one key file; the error names the file. */
export function readPlanKeyFile(file: string): PlanKey {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(withCause(`plan key ${file}: cannot read`, e), { cause: e });
  }
  try {
    return parsePlanKey(text);
  } catch (e) {
    throw new Error(withCause(`plan key ${file}`, e), { cause: e });
  }
}

function fingerprint(file: string): string {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch {
    return 'missing';
  }
}

/** The current keys of a set of key files. */
export class KeyRing {
  private current: PlanKey[];
  private prints: string[];
  private timer: NodeJS.Timeout | null = null;

  /** Loads every file now; throws (naming the file) when one cannot be used. */
  constructor(
    private readonly files: string[],
    private readonly log: Logger,
  ) {
    this.current = files.map(readPlanKeyFile);
    this.prints = files.map(fingerprint);
  }

  keys(): readonly PlanKey[] {
    return this.current;
  }

  /** Ids of the keys loaded (never the secrets). */
  ids(): string[] {
    return this.current.map((k) => k.id);
  }

  /** Re-read the files if any changed; true when the ring changed. */
  reload(): boolean {
    const prints = this.files.map(fingerprint);
    if (prints.every((p, i) => p === this.prints[i])) return false;
    try {
      const next = this.files.map(readPlanKeyFile);
      this.prints = prints;
      const changed = next.map((k) => k.id).join(',') !== this.ids().join(',');
      this.current = next;
      if (changed) this.log.info({ keyIds: this.ids() }, 'plan keys reloaded');
      return changed;
    } catch (e) {
      this.log.error(
        { error: (e as Error).message, keyIds: this.ids() },
        'plan key files changed but cannot be used; keeping the keys loaded before',
      );
      return false;
    }
  }

  /** Check the files every `everyMs` and call `onChange` when the keys changed. */
  watch(everyMs: number, onChange: () => void): void {
    this.timer = setInterval(() => {
      if (this.reload()) onChange();
    }, everyMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
