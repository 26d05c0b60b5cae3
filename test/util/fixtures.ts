/** Paths and shared fixtures for tests (compiled to dist/test/util, so the repo root is ../../..). */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { Route } from '../../core/types.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const fixture = (name: string): string => resolve(repoRoot, 'test', 'fixtures', name);
export const cliPath = resolve(repoRoot, 'dist', 'bin', 'ovnkube-route.js');

export interface RouteCase {
  name: string;
  why?: string;
  /** Bad cases: a substring of the error both sides must report. */
  expectMessage?: string;
  /** Bad cases: the API server's HTTP status (422 Invalid by default; 400 for strict decoding errors). */
  expectStatus?: number;
  /** Good cases: the spec the API server stores, when not the one sent plus priority 0. */
  stored?: Record<string, unknown>;
  route: Route;
}

interface RawCase {
  name: string;
  why?: string;
  expectMessage?: string;
  expectStatus?: number;
  stored?: Record<string, unknown>;
  /** Extra metadata fields (typos included), besides the name. */
  metadata?: Record<string, unknown>;
  route?: Route & Record<string, unknown>;
  generate?: { field: 'route' | 'svc'; count: number };
}

/** The shared good/bad Route cases, as complete Route objects named after the case. */
export function routeCases(file: 'bad-routes.yaml' | 'good-routes.yaml'): RouteCase[] {
  const raw = parse(readFileSync(fixture(file), 'utf8')) as RawCase[];
  return raw.map(({ metadata, ...c }) => {
    const { spec: given, ...top } = c.route ?? {};
    let spec: unknown = c.route && 'spec' in c.route ? given : {};
    if (c.generate) {
      const n = c.generate.count;
      spec =
        c.generate.field === 'route'
          ? { route: Array.from({ length: n }, (_, i) => ({ dst: `10.${Math.floor(i / 256)}.${i % 256}.0/24`, dev: 'eth1' })) }
          : { svc: Array.from({ length: n }, (_, i) => ({ namespace: 'default', name: `svc-${i}`, dev: 'eth1' })) };
    }
    return { ...c, route: { ...top, apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name: c.name, ...metadata }, spec } as Route };
  });
}
