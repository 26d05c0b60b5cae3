// The agent's netlink sockets (injector/native/setns.c: rtnlOpen for requests, nlSubscribe
// for events) are made with their options set at creation, in the pod's netns, whatever the
// number of fds the process holds: nothing lists /proc/self/fd or guesses which fd a socket
// got. With thousands of fds open (holes among them): each is an rtnetlink socket of the right
// netns, the event socket ignores overflows (NETLINK_NO_ENOBUFS) with its 4 MiB buffer, and
// closing them leaves no fd behind.
import { closeSync, openSync } from 'node:fs';
import t, { type Test } from 'tap';
import { subscribeNetns } from '../../injector/kernel/netlink-events.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { netlinkConstants, socketInfo } from '../../injector/kernel/netns.js';
import { makePod, openFds } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { until } from '../util/until.js';

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

t.test("the agent's sockets are made with their options set, with thousands of fds open", async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const held = holdFds(t, 3000);
  const { AF_NETLINK, NETLINK_ROUTE } = netlinkConstants();
  for (const i of [100, 1500, 2999]) closeSync(held[i]!); // holes in the middle of the table
  const before = openFds();
  const c = RtnlClient.open(pod.path);
  const events: string[] = [];
  const sub = subscribeNetns(pod.path, (ev) => events.push(ev.kind));
  t.teardown(() => {
    c.close();
    sub.close();
  });
  const req = socketInfo(c.socketFd);
  t.same([req.domain, req.protocol], [AF_NETLINK, NETLINK_ROUTE], `the request socket (fd ${c.socketFd}) is rtnetlink`);
  t.equal(req.noEnobufs, 0, 'and reports overflows (a request never waits for replies that were dropped)');
  t.ok(req.rcvbuf >= 1 << 20, `with a 1 MiB receive buffer (${req.rcvbuf})`);
  const ev = socketInfo(sub.fd);
  t.same([ev.domain, ev.protocol], [AF_NETLINK, NETLINK_ROUTE], `the event socket (fd ${sub.fd}) is rtnetlink`);
  t.equal(ev.noEnobufs, 1, 'NETLINK_NO_ENOBUFS on the event socket');
  t.ok(ev.rcvbuf >= 4 << 20, `with a 4 MiB receive buffer (${ev.rcvbuf})`);
  // Both belong to the pod's netns: what the pod's `ip` sees, they see and hear.
  t.ok(
    (await c.listLinks()).some((l) => l.name === 'eth1'),
    "the request socket talks to the pod's netns",
  );
  pod.ip('link', 'set', 'eth1', 'down');
  await until("the event socket hears the pod's netns", () => events.includes('link'));
  c.close();
  sub.close();
  sub.close(); // idempotent
  t.equal(c.socketFd, -1, 'a closed client has no fd');
  t.equal(openFds(), before, 'closing both leaves no fd');
});
