import t from 'tap';
import { canonicalCIDR, canonicalIP, cidrWithin, compareCIDR, parseCIDR, parseIP } from '../../core/ip.js';

t.test('IP parsing and canonical form', async (t) => {
  const cases: [string, string | null][] = [
    ['10.86.69.17', '10.86.69.17'],
    [' 10.86.69.17 ', '10.86.69.17'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['256.1.1.1', null],
    ['1.2.3', null],
    ['01.2.3.4', null], // leading zeros refused, as Kubernetes' CEL ip() does
    ['1.2.3.4.5', null],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first longest zero run compressed
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'], // a single zero group is not compressed
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['::ffff:1.2.3.4', null], // IPv4-mapped refused
    ['fe80::1%eth0', null], // zones refused
    ['1:2:3:4:5:6:7:8:9', null],
    ['1::2::3', null],
    ['12345::', null],
    ['', null],
    ['gateway', null],
  ];
  for (const [input, want] of cases) {
    const r = parseIP(input);
    if (want === null) t.notOk(r.ok, `${JSON.stringify(input)} refused`);
    else t.equal(canonicalIP(input), want, `${JSON.stringify(input)} -> ${want}`);
  }
});

t.test('CIDR parsing, trimming and host bits', async (t) => {
  const cases: [string, string | RegExp][] = [
    ['172.16.0.0/16 ', '172.16.0.0/16'],
    ['  10.124.0.0/16', '10.124.0.0/16'],
    ['10.86.69.17/32', '10.86.69.17/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['FD00:10:0::/64', 'fd00:10::/64'],
    ['::/0', '::/0'],
    ['10.0.0.5/24', /host bits set: did you mean 10\.0\.0\.0\/24\?/],
    ['fd00::1/64', /host bits set: did you mean fd00::\/64\?/],
    ['10.0.0.0/33', /prefix length must be 0-32/],
    ['fd00::/129', /prefix length must be 0-128/],
    ['10.0.0.0/08', /prefix length/],
    ['10.0.0.0', /expected ADDRESS\/PREFIX/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0/24', /not a valid IPv4 address/],
  ];
  for (const [input, want] of cases) {
    if (typeof want === 'string') t.equal(canonicalCIDR(input), want, `${JSON.stringify(input)} -> ${want}`);
    else {
      const r = parseCIDR(input);
      t.notOk(r.ok, `${JSON.stringify(input)} refused`);
      if (!r.ok) t.match(r.error, want, `${JSON.stringify(input)}: ${r.error}`);
    }
  }
});

t.test('CIDR order: IPv4 first, then address, then prefix', async (t) => {
  const list = ['fd00::/64', '10.124.0.0/16', '10.124.0.0/24', '10.86.69.17/32', '::/0', '192.168.2.0/24'];
  const sorted = list
    .map((s) => ({ s, c: (parseCIDR(s) as { ok: true; value: Parameters<typeof compareCIDR>[0] }).value }))
    .sort((a, b) => compareCIDR(a.c, b.c))
    .map((x) => x.s);
  t.same(sorted, ['10.86.69.17/32', '10.124.0.0/16', '10.124.0.0/24', '192.168.2.0/24', '::/0', 'fd00::/64']);
});

t.test('cidrWithin: every address of the first is in the second', async (t) => {
  const cases: [string, string, boolean][] = [
    ['172.16.10.0/24', '172.16.10.0/24', true], // itself
    ['172.16.10.128/25', '172.16.10.0/24', true],
    ['172.16.10.7/32', '172.16.10.0/24', true],
    ['172.16.11.0/25', '172.16.10.0/24', false], // beside it
    ['172.16.0.0/16', '172.16.10.0/24', false], // wider
    ['0.0.0.0/0', '172.16.10.0/24', false],
    ['172.16.10.0/24', '0.0.0.0/0', true],
    ['10.124.2.0/24', '10.124.0.0/16', true],
    ['fd00:99::/80', 'fd00:99::/64', true],
    ['fd00:98::/80', 'fd00:99::/64', false],
    ['fd00:99::/64', '172.16.10.0/24', false], // another family
    ['::/0', '0.0.0.0/0', false],
    // The ends of the IPv4 space (the arithmetic there is in numbers, not BigInts).
    ['255.255.255.255/32', '255.255.255.0/24', true],
    ['255.255.255.255/32', '128.0.0.0/1', true],
    ['127.255.255.255/32', '128.0.0.0/1', false],
    ['0.0.0.0/32', '0.0.0.0/1', true],
    ['255.255.255.254/31', '255.255.255.255/32', false],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128', 'ffff::/16', true],
  ];
  for (const [inner, outer, want] of cases) {
    const i = parseCIDR(inner);
    const o = parseCIDR(outer);
    if (!i.ok || !o.ok) {
      t.fail(`bad case ${inner} ${outer}`);
      continue;
    }
    t.equal(cidrWithin(i.value, o.value), want, `${inner} within ${outer}: ${want}`);
  }
});
