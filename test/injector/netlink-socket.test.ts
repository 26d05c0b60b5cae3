// Creating hardened rtnetlink sockets (injector/kernel/netlink-socket.ts) without listing
// /proc/self/fd: the new socket's fd is guessed as the lowest free fd, then verified.
// With thousands of fds open (and holes among them) every socket is found and hardened;
// a wrong guess (a file, a free fd, another rtnetlink socket) is refused, the new socket
// closed, and no fd is left behind.
import { closeSync, openSync } from 'node:fs';
import t, { type Test } from 'tap';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { createRtnlSocket, socketFd } from '../../injector/kernel/netlink-socket.js';
import { lowestFreeFd, netlinkConstants, socketInfo } from '../../injector/kernel/netns.js';
import { makePod, openFds } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

/** Open `n` fds on /dev/null; closed in teardown. */
function holdFds(t: Test, n: number): number[] {
  const held = Array.from({ length: n }, () => openSync('/dev/null', 'r'));
  t.teardown(() => {
    for (const fd of held) {
      try {
        closeSync(fd);
      } catch {
        /* closed by the test */
      }
    }
  });
  return held;
}

t.test('lowestFreeFd is the fd the next open gets, with holes too', async (t) => {
  const held = holdFds(t, 50);
  const guess = lowestFreeFd();
  const fd = openSync('/dev/null', 'r');
  t.equal(fd, guess, 'no hole: the next fd');
  closeSync(fd);
  closeSync(held[10]!); // a hole below the top
  t.equal(lowestFreeFd(), held[10], 'the hole is the lowest free fd');
  const again = openSync('/dev/null', 'r');
  t.equal(again, held[10], 'and the kernel fills it');
  held[10] = again;
});

t.test('sockets are found and hardened with thousands of fds open', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const held = holdFds(t, 3000);
  const { AF_NETLINK, NETLINK_ROUTE } = netlinkConstants();
  // Holes in the middle of the table: each new socket must land in (and be found in) one.
  for (const i of [100, 1500, 2999]) {
    closeSync(held[i]!);
  }
  const before = openFds();
  const socks = [];
  for (let i = 0; i < 5; i++) {
    // The first three in the current netns (withNetns' own two fds would take holes first).
    const s = createRtnlSocket(i < 3 ? null : pod.path, { rcvbuf: 1 << 20 });
    socks.push(s);
    const fd = socketFd(s)!;
    const info = socketInfo(fd);
    t.equal(info.domain, AF_NETLINK, `socket ${i} (fd ${fd}) is netlink`);
    t.equal(info.protocol, NETLINK_ROUTE, 'and rtnetlink');
    t.equal(info.noEnobufs, 1, 'NETLINK_NO_ENOBUFS is set');
    t.ok(info.rcvbuf >= 1 << 20, `rcvbuf raised (${info.rcvbuf})`);
  }
  t.same(
    socks.slice(0, 3).map((s) => socketFd(s)),
    [held[100], held[1500], held[2999]],
    'the first three filled the holes',
  );
  t.equal(new Set(socks.map((s) => socketFd(s))).size, socks.length, 'every socket has its own fd');
  for (const s of socks) s.socket.close();
  t.equal(openFds(), before, 'closing them leaves no fd');

  // And a full client works with the fd table that large.
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  t.ok(
    (await c.listLinks()).some((l) => l.name === 'eth1'),
    'a client made among 3000 fds talks to its netns',
  );
});

t.test('a wrong guess is refused: the socket is closed and nothing is left open', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const file = openSync('/dev/null', 'r');
  t.teardown(() => closeSync(file));
  const other = createRtnlSocket(pod.path);
  t.teardown(() => other.socket.close());
  const otherFd = socketFd(other)!;
  const otherSndbuf = socketInfo(otherFd).sndbuf;
  const before = openFds();
  const refuses = (what: string, guess: number, msg: RegExp): void => {
    t.throws(() => createRtnlSocket(pod.path, { guessFd: () => guess }), { message: msg }, `refused: ${what}`);
    t.equal(openFds(), before, `no fd left open after refusing ${what}`);
  };
  refuses('a file', file, /cannot harden the netlink socket: guessed fd \d+ is not a socket/);
  refuses('a free fd', 60_000, /cannot harden the netlink socket: guessed fd \d+ is not a socket/);
  refuses('another rtnetlink socket of ours', otherFd, /is another rtnetlink socket/);
  t.equal(socketInfo(otherFd).sndbuf, otherSndbuf, "the other socket's send buffer is as it was");
  t.equal(socketInfo(otherFd).noEnobufs, 1, 'and it is still hardened');
});
