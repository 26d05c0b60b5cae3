/**
 * Leader election through a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
 *
 * - A candidate tries every `retryPeriod` (+ up to 20% jitter) to acquire the Lease: it
 *   takes it when there is none, when it is released (no holder), or when the holder has not
 *   renewed it for `leaseDurationSeconds` as measured on OUR clock since we last saw the
 *   record change (so clock skew between replicas does not matter).
 * - Every write is a create or a replace carrying the resourceVersion that was read, so two
 *   candidates can never both succeed: the loser gets a 409 Conflict.
 * - The leader renews every `retryPeriod`; if no renewal succeeds for `renewDeadline`, it
 *   stops leading (its work is aborted) before anyone else can take over (renewDeadline <
 *   leaseDuration), then competes again like any candidate.
 * - On shutdown the leader releases the Lease (holder cleared), so another replica takes
 *   over at its next retry instead of waiting for the lease to expire.
 * Defaults are client-go's: lease 15 s, renew deadline 10 s, retry 2 s.
 */
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { sleep } from '../../platform/queue.js';
import { classifyApiError } from '../../platform/api-errors.js';

/** The CoordinationV1Api calls used (client-node's object-argument style). */
export interface LeaseApi {
  readNamespacedLease(p: { name: string; namespace: string }): Promise<V1Lease>;
  createNamespacedLease(p: { namespace: string; body: V1Lease }): Promise<V1Lease>;
  replaceNamespacedLease(p: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
}

export interface LeaderElectionOptions {
  api: LeaseApi;
  namespace: string;
  name: string;
  /** Unique per replica (pod name plus a random part). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Called when this replica becomes the leader; `signal` aborts when it stops being one. */
  onStartedLeading(signal: AbortSignal): void;
  /**
   * Called when this replica stops leading (lost, or shutting down). The Lease is released
   * (or campaigned for again) only after the returned promise settles, so the work of the
   * term can finish before another replica starts.
   */
  onStoppedLeading(): void | Promise<void>;
  /** Called when the observed leader changes (including to ourselves). */
  onNewLeader?(identity: string): void;
  /** Failed Lease reads/writes (other than losing a race); they are retried. */
  onError?(err: unknown): void;
  random?: () => number;
}

export const LEADER_DEFAULTS = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } as const;
const JITTER = 1.2;

/** Check the timing options as client-go does; returns the problem or null. */
export function leaderTimingProblem(t: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number }): string | null {
  if (!(t.retryPeriodMs > 0)) return `retry period must be positive, got ${t.retryPeriodMs} ms`;
  if (t.leaseDurationMs < 1000) return `lease duration must be at least 1 s (the Lease stores whole seconds), got ${t.leaseDurationMs} ms`;
  if (!(t.leaseDurationMs > t.renewDeadlineMs))
    return `lease duration (${t.leaseDurationMs} ms) must be greater than the renew deadline (${t.renewDeadlineMs} ms)`;
  if (!(t.renewDeadlineMs > JITTER * t.retryPeriodMs))
    return `renew deadline (${t.renewDeadlineMs} ms) must be greater than ${JITTER} x the retry period (${t.retryPeriodMs} ms)`;
  return null;
}

/** MicroTime as the API server wants it: RFC 3339 with exactly 6 fractional digits. */
const micro = (ms: number): V1MicroTime => new V1MicroTime(ms);

/** Runs one replica's side of the election until stopped. */
export class LeaderElector {
  private readonly t: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  private observedRecord = '';
  private observedAt = 0;
  private leaderId = '';
  private leading = false;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.t = {
      leaseDurationMs: opts.leaseDurationMs ?? LEADER_DEFAULTS.leaseDurationMs,
      renewDeadlineMs: opts.renewDeadlineMs ?? LEADER_DEFAULTS.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs ?? LEADER_DEFAULTS.retryPeriodMs,
    };
    const problem = leaderTimingProblem(this.t);
    if (problem) throw new Error(`leader election for Lease ${opts.namespace}/${opts.name}: ${problem}`);
    if (!opts.identity) throw new Error(`leader election for Lease ${opts.namespace}/${opts.name}: identity must not be empty`);
  }

  /** Whether this replica leads now. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The identity of the leader last observed ('' when none). */
  leader(): string {
    return this.leaderId;
  }

  /** Campaign, lead, and campaign again after a loss, until `signal` aborts; then release. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!(await this.acquire(signal))) break;
      const term = new AbortController();
      this.leading = true;
      this.opts.onStartedLeading(term.signal);
      try {
        await this.renew(signal);
      } finally {
        this.leading = false;
        term.abort(new Error('leadership ended'));
        try {
          await this.opts.onStoppedLeading();
        } catch (e) {
          this.opts.onError?.(e);
        }
      }
      if (signal.aborted) await this.release();
    }
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) return true;
      const wait = this.t.retryPeriodMs * (1 + (JITTER - 1) * (this.opts.random ?? Math.random)());
      try {
        await sleep(wait, signal);
      } catch {
        return false;
      }
    }
    return false;
  }

  /** Renew every retry period until shutdown, or until renewals fail for the renew deadline. */
  private async renew(signal: AbortSignal): Promise<void> {
    let renewed = Date.now();
    while (!signal.aborted) {
      try {
        await sleep(this.t.retryPeriodMs, signal);
      } catch {
        return;
      }
      const left = renewed + this.t.renewDeadlineMs - Date.now();
      // A renewal that hangs must not keep us leading past the deadline.
      const ok =
        left > 0 && (await Promise.race([this.tryAcquireOrRenew(), new Promise<boolean>((r) => setTimeout(() => r(false), left).unref())]));
      if (ok) renewed = Date.now();
      else if (Date.now() - renewed >= this.t.renewDeadlineMs) return;
    }
  }

  private observe(holder: string): void {
    if (holder !== this.leaderId) {
      this.leaderId = holder;
      if (holder) this.opts.onNewLeader?.(holder);
    }
  }

  /** One attempt; true when we hold the Lease afterwards. Never throws. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.opts;
    const now = Date.now();
    const seconds = Math.ceil(this.t.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (classifyApiError(e).status !== 404) {
        this.opts.onError?.(e);
        return false;
      }
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: seconds,
              acquireTime: micro(now),
              renewTime: micro(now),
              leaseTransitions: 0,
            },
          },
        });
      } catch (err) {
        if (classifyApiError(err).status !== 409) this.opts.onError?.(err);
        return false;
      }
      this.observedRecord = '';
      this.observe(identity);
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = JSON.stringify([
      holder,
      String(spec.renewTime ?? ''),
      String(spec.acquireTime ?? ''),
      spec.leaseTransitions ?? 0,
      spec.leaseDurationSeconds ?? 0,
    ]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = now;
    }
    const durationMs = (spec.leaseDurationSeconds ?? seconds) * 1000;
    if (holder && holder !== identity && this.observedAt + durationMs > now) {
      this.observe(holder);
      return false;
    }
    const ours = holder === identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: seconds,
        acquireTime: ours && spec.acquireTime ? spec.acquireTime : micro(now),
        renewTime: micro(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
      },
    };
    try {
      await api.replaceNamespacedLease({ name, namespace, body });
    } catch (e) {
      if (classifyApiError(e).status !== 409) this.opts.onError?.(e);
      return false;
    }
    this.observe(identity);
    return true;
  }

  /** Clear the holder so another replica can take over at once (only if we still hold it). */
  private async release(): Promise<void> {
    const { api, namespace, name, identity } = this.opts;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = Date.now();
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, acquireTime: micro(now), renewTime: micro(now) },
        },
      });
      this.observe('');
    } catch (e) {
      this.opts.onError?.(e);
    }
  }
}
