/**
 * TypeScript twins of the CEL rules (x-kubernetes-validations) in crds/route.yaml, keyed by
 * the exact rule text. The ajv validator refuses to build if the CRD carries a rule that has
 * no twin here, so the CLI can never silently accept what the API server refuses.
 * Semantics follow Kubernetes' CEL IP/CIDR library (Go netip): exact text, no trimming.
 */
import { maskCIDR, parseAddr, parsePrefix } from './ip.js';

type Self = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const has = (self: Self, k: string): boolean => self[k] !== undefined && self[k] !== null;
const isCIDR = (v: unknown): boolean => str(v) !== undefined && parsePrefix(str(v)!).ok;
const isIP = (v: unknown): boolean => str(v) !== undefined && parseAddr(str(v)!).ok;
const cidrOf = (v: unknown) => {
  const p = parsePrefix(str(v)!);
  if (!p.ok) throw new Error(p.error);
  return p.value;
};
const ipOf = (v: unknown) => {
  const p = parseAddr(str(v)!);
  if (!p.ok) throw new Error(p.error);
  return p.value;
};

/** rule text -> predicate over `self` (true = valid). */
export const celTwins: Record<string, (self: unknown) => boolean> = {
  "self != '.' && self != '..'": (self) => self !== '.' && self !== '..',
  'isCIDR(self.dst)': (self) => isCIDR((self as Self).dst),
  '!isCIDR(self.dst) || cidr(self.dst).masked() == cidr(self.dst)': (self) => {
    const s = self as Self;
    if (!isCIDR(s.dst)) return true;
    const c = cidrOf(s.dst);
    return maskCIDR(c).value === c.value;
  },
  '!isCIDR(self.dst) || cidr(self.dst).prefixLength() != 0': (self) => {
    const s = self as Self;
    return !isCIDR(s.dst) || cidrOf(s.dst).bits !== 0;
  },
  "!has(self.via) || self.via == 'gateway' || isIP(self.via)": (self) =>
    !has(self as Self, 'via') || (self as Self).via === 'gateway' || isIP((self as Self).via),
  '!has(self.via) || !isIP(self.via) || !isCIDR(self.dst) || ip(self.via).family() == cidr(self.dst).ip().family()': (self) => {
    const s = self as Self;
    if (!has(s, 'via') || !isIP(s.via) || !isCIDR(s.dst)) return true;
    return ipOf(s.via).family === cidrOf(s.dst).family;
  },
  '!has(self.src) || isIP(self.src)': (self) => !has(self as Self, 'src') || isIP((self as Self).src),
  '!has(self.src) || !isIP(self.src) || !isCIDR(self.dst) || ip(self.src).family() == cidr(self.dst).ip().family()': (self) => {
    const s = self as Self;
    if (!has(s, 'src') || !isIP(s.src) || !isCIDR(s.dst)) return true;
    return ipOf(s.src).family === cidrOf(s.dst).family;
  },
  '!has(self.mtu) || !isCIDR(self.dst) || cidr(self.dst).ip().family() == 4 || self.mtu >= 1280': (self) => {
    const s = self as Self;
    if (!has(s, 'mtu') || !isCIDR(s.dst) || cidrOf(s.dst).family === 4) return true;
    return typeof s.mtu === 'number' && s.mtu >= 1280;
  },
  '!has(self.src) || !has(self.via) || !isIP(self.src) || !isIP(self.via) || ip(self.src).family() == ip(self.via).family()': (self) => {
    const s = self as Self;
    if (!has(s, 'src') || !has(s, 'via') || !isIP(s.src) || !isIP(s.via)) return true;
    return ipOf(s.src).family === ipOf(s.via).family;
  },
  '!has(self.mtu) || ((has(self.via) && isIP(self.via)) ? ip(self.via).family() : ((has(self.src) && isIP(self.src)) ? ip(self.src).family() : 4)) == 4 || self.mtu >= 1280':
    (self) => {
      const s = self as Self;
      if (!has(s, 'mtu')) return true;
      const family = has(s, 'via') && isIP(s.via) ? ipOf(s.via).family : has(s, 'src') && isIP(s.src) ? ipOf(s.src).family : 4;
      return family === 4 || (typeof s.mtu === 'number' && s.mtu >= 1280);
    },
  'self.all(d, self.filter(x, x == d).size() == 1)': (self) => {
    if (!Array.isArray(self)) return true;
    return self.every((d) => self.filter((x) => x === d).length === 1);
  },
  "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)": (
    self,
  ) => {
    const s = self as Self;
    const n = Array.isArray(s.values) ? s.values.length : 0;
    return s.operator === 'In' || s.operator === 'NotIn' ? has(s, 'values') && n > 0 : !has(s, 'values') || n === 0;
  },
};
