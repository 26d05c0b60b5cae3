/*
 * setns.node: the one syscall Node cannot make, setns(2), exposed to JavaScript.
 *
 * Only injector/kernel/netns.ts calls it (through withNetns), so entering and restoring a network
 * namespace lives in one place. setns(2) switches the *calling thread* only; JavaScript runs
 * on one thread, so everything done synchronously between enter and restore (for example
 * creating a netlink socket) happens inside the target namespace.
 *
 *   setns(fd: number, nstype: number): void   throws Error with .code = "EINVAL" etc.
 *   gettid(): number                          the calling thread's kernel id (for tests/logs)
 *   inotifySubscribe(dir, content, onEvents)
 *       an inotify queue of one directory, watched on the event loop like an event socket
 *       (below), every queued event handed to JavaScript in one call (discovery/watch.ts).
 *   socketInfo(fd: number): { domain, protocol, sndbuf, rcvbuf, noEnobufs }
 *       SO_DOMAIN, SO_PROTOCOL, SO_SNDBUF, SO_RCVBUF and (netlink only, else -1)
 *       NETLINK_NO_ENOBUFS of a socket fd; throws ENOTSOCK / EBADF for anything else.
 *   socketQueue(fd: number): { rmem: number, drops: number }
 *       SO_MEMINFO of a socket: the bytes waiting in its receive queue (SK_MEMINFO_RMEM_ALLOC)
 *       and the count of messages the kernel dropped for it (SK_MEMINFO_DROPS). With
 *       NETLINK_NO_ENOBUFS an overflowing event socket drops events silently, but the kernel
 *       still counts each drop here: one syscall tells whether events were lost, and whether
 *       some are still unread.
 *   rtnlOpen(rcvbuf: number): number
 *   rtnlTalk(fd: number, request: Buffer, count: number, firstSeq: number, timeoutMs: number): Buffer
 *       the RtnlClient's own rtnetlink socket (injector/kernel/netlink.ts), and one exchange on
 *       it: a batch of requests sent in one sendmsg and every reply read back, without the
 *       event loop (rtnetlink answers a request inside sendmsg). See the functions below.
 *   nlSubscribe(groups, rcvbuf, onMessages), subscriptionFd(sub), unsubscribe(sub)
 *       an event socket of a netns with its options set at creation, watched on the event
 *       loop, every queued message handed to JavaScript in one call (netlink-events.ts).
 *   CLONE_NEWNET, AF_NETLINK, NETLINK_ROUTE: number
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <stdbool.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <node_api.h>
#include <uv.h>

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char msg[160];
  const char *name = "EUNKNOWN";
  switch (err) {
    case EBADF: name = "EBADF"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOMEM: name = "ENOMEM"; break;
    case EPERM: name = "EPERM"; break;
    case ENOSYS: name = "ENOSYS"; break;
    case ENOTSOCK: name = "ENOTSOCK"; break;
    case ENOPROTOOPT: name = "ENOPROTOOPT"; break;
    case EMFILE: name = "EMFILE"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case EACCES: name = "EACCES"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case ENOENT: name = "ENOENT"; break;
    case ETIMEDOUT: name = "ETIMEDOUT"; break;
    case ENOBUFS: name = "ENOBUFS"; break;
    case EMSGSIZE: name = "EMSGSIZE"; break;
    case EAFNOSUPPORT: name = "EAFNOSUPPORT"; break;
    case EPROTONOSUPPORT: name = "EPROTONOSUPPORT"; break;
    default: break;
  }
  snprintf(msg, sizeof msg, "%s failed: %s (%s)", syscall, strerror(err), name);
  napi_value code, message, error, errnum;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &message);
  napi_set_named_property(env, error, "syscall", message);
  napi_throw(env, error);
  return NULL;
}

static napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, nstype;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &nstype) != napi_ok) {
    napi_throw_type_error(env, NULL, "setns(fd, nstype) expects two integers");
    return NULL;
  }
  if (setns(fd, nstype) != 0) return throw_errno(env, errno, "setns");
  return NULL;
}

static napi_value js_gettid(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int64(env, (int64_t)syscall(SYS_gettid), &out);
  return out;
}

/* The one integer argument (an fd) of a call; false (a TypeError thrown) when it is not that. */
static bool fd_arg(napi_env env, napi_callback_info info, const char *usage, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return false;
  }
  return true;
}

static int sockopt_int(int fd, int level, int name, int *out) {
  socklen_t len = sizeof *out;
  *out = 0;
  return getsockopt(fd, level, name, out, &len);
}

static napi_value js_socket_info(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "socketInfo(fd) expects an integer", &fd)) return NULL;
  int domain, protocol, sndbuf, rcvbuf, noenobufs = -1;
  if (sockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) != 0) return throw_errno(env, errno, "getsockopt(SO_DOMAIN)");
  if (sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0) return throw_errno(env, errno, "getsockopt(SO_PROTOCOL)");
  if (sockopt_int(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf) != 0) return throw_errno(env, errno, "getsockopt(SO_SNDBUF)");
  if (sockopt_int(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf) != 0) return throw_errno(env, errno, "getsockopt(SO_RCVBUF)");
  if (domain == AF_NETLINK && sockopt_int(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &noenobufs) != 0) {
    return throw_errno(env, errno, "getsockopt(NETLINK_NO_ENOBUFS)");
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, domain, &v); napi_set_named_property(env, out, "domain", v);
  napi_create_int32(env, protocol, &v); napi_set_named_property(env, out, "protocol", v);
  napi_create_int32(env, sndbuf, &v); napi_set_named_property(env, out, "sndbuf", v);
  napi_create_int32(env, rcvbuf, &v); napi_set_named_property(env, out, "rcvbuf", v);
  napi_create_int32(env, noenobufs, &v); napi_set_named_property(env, out, "noEnobufs", v);
  return out;
}

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

static napi_value js_socket_queue(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "socketQueue(fd) expects an integer", &fd)) return NULL;
  uint32_t mem[SK_MEMINFO_VARS];
  memset(mem, 0, sizeof mem);
  socklen_t len = sizeof mem;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0) return throw_errno(env, errno, "getsockopt(SO_MEMINFO)");
  if (len < sizeof(uint32_t) * (SK_MEMINFO_DROPS + 1)) return throw_errno(env, EINVAL, "getsockopt(SO_MEMINFO): short answer");
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_uint32(env, mem[SK_MEMINFO_RMEM_ALLOC], &v); napi_set_named_property(env, out, "rmem", v);
  napi_create_uint32(env, mem[SK_MEMINFO_DROPS], &v); napi_set_named_property(env, out, "drops", v);
  return out;
}

/* A receive buffer of `rcvbuf` bytes (past the system's limit with CAP_NET_ADMIN); 0 when done or rcvbuf <= 0. */
static int set_rcvbuf(int fd, int32_t rcvbuf) {
  if (rcvbuf <= 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

/*
 * rtnlOpen(rcvbuf): a NETLINK_ROUTE socket of the calling thread's netns (call inside
 * withNetns), CLOEXEC, bound by the kernel, with NETLINK_CAP_ACK (an ACK does not copy the
 * request back) and NETLINK_EXT_ACK (an error says why); SO_RCVBUF(FORCE) when rcvbuf > 0.
 */
static napi_value js_rtnl_open(napi_env env, napi_callback_info info) {
  int32_t rcvbuf;
  if (!fd_arg(env, info, "rtnlOpen(rcvbuf) expects an integer", &rcvbuf)) return NULL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, errno, "socket(AF_NETLINK)");
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  int one = 1;
  const char *what = NULL;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) what = "bind";
  else if (setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one) != 0) what = "setsockopt(NETLINK_CAP_ACK)";
  else if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) != 0) what = "setsockopt(NETLINK_EXT_ACK)";
  else if (set_rcvbuf(fd, rcvbuf) != 0) what = "setsockopt(SO_RCVBUF)";
  if (what) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, what);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/*
 * rtnlTalk(fd, request: Buffer, count: number, firstSeq: number, timeoutMs: number): Buffer
 * Send `request` (`count` netlink messages numbered firstSeq, firstSeq + 1, ...) in one
 * sendmsg, then read replies until each of them has ended (an NLMSG_ERROR, i.e. an ACK or
 * an error, or an NLMSG_DONE, of its sequence number), and return every reply read,
 * concatenated. rtnetlink handles a request inside
 * sendmsg, so its replies are queued when sendmsg returns (a dump's next part is made as the
 * previous one is read); poll() waits for the rare rest, at most timeoutMs (then ETIMEDOUT).
 */
static napi_value js_rtnl_talk(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *req = NULL;
  size_t reqlen = 0;
  int32_t fd, count, timeout_ms;
  uint32_t first_seq;
  bool isbuf = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, argv[1], &req, &reqlen) != napi_ok || napi_get_value_int32(env, argv[2], &count) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &first_seq) != napi_ok || napi_get_value_int32(env, argv[4], &timeout_ms) != napi_ok ||
      count < 1) {
    napi_throw_type_error(env, NULL, "rtnlTalk(fd, request, count, firstSeq, timeoutMs) expects an integer, a Buffer and three integers");
    return NULL;
  }
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  struct iovec iov = {req, reqlen};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_name = &kernel;
  mh.msg_namelen = sizeof kernel;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t n;
  do n = sendmsg(fd, &mh, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendmsg(netlink)");
  size_t cap = 65536, len = 0;
  char *out = malloc(cap);
  if (!out) return throw_errno(env, ENOMEM, "rtnlTalk");
  int32_t seen = 0;
  while (seen < count) {
    if (cap - len < 32768) {
      char *grown = realloc(out, cap * 2);
      if (!grown) { free(out); return throw_errno(env, ENOMEM, "rtnlTalk"); }
      out = grown;
      cap *= 2;
    }
    do n = recv(fd, out + len, cap - len, MSG_DONTWAIT | MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd, POLLIN, 0};
      int r;
      do r = poll(&p, 1, timeout_ms);
      while (r < 0 && errno == EINTR);
      if (r == 0) { free(out); return throw_errno(env, ETIMEDOUT, "rtnlTalk"); }
      if (r < 0) { int err = errno; free(out); return throw_errno(env, err, "poll(netlink)"); }
      continue;
    }
    if (n < 0) { int err = errno; free(out); return throw_errno(env, err, "recv(netlink)"); }
    if ((size_t)n > cap - len) { free(out); return throw_errno(env, EMSGSIZE, "recv(netlink)"); }
    for (size_t off = len; off + sizeof(struct nlmsghdr) <= len + (size_t)n;) {
      struct nlmsghdr *h = (struct nlmsghdr *)(out + off);
      if (h->nlmsg_len < sizeof *h || off + h->nlmsg_len > len + (size_t)n) break;
      if ((h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) && h->nlmsg_seq - first_seq < (uint32_t)count) seen++;
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
    len += (size_t)n;
  }
  napi_value buf;
  void *data;
  if (napi_create_buffer_copy(env, len, out, &data, &buf) != napi_ok) { free(out); return NULL; }
  free(out);
  return buf;
}

/*
 * nlSubscribe(groups: number[], rcvbuf: number, onMessages: (buf: Buffer | null, error?: string) => void): object
 * An event socket: a NETLINK_ROUTE socket of the calling thread's netns (call inside
 * withNetns) joined to `groups` (RTNLGRP_*), non-blocking, CLOEXEC, with NETLINK_NO_ENOBUFS
 * (an overflow drops events, which the kernel counts: socketQueue) and a receive buffer of
 * `rcvbuf` bytes, all set before it is returned. It is watched on the event loop (libuv poll,
 * keeping the loop alive); whenever it is readable, everything queued is read (up to 256 KiB
 * per turn) and handed to onMessages in one call, the messages concatenated. A read error
 * other than EAGAIN is handed as its errno name (the socket stays watched).
 * subscriptionFd(sub): its fd (for socketQueue). unsubscribe(sub): stop watching and close
 * the fd, at once; idempotent (for inotifySubscribe's too).
 */
/* A watched fd, an event socket or an inotify queue: both are read and delivered the same way. */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref self;
  napi_async_context context;
  int fd;
  bool closed;
} fd_sub;

static void sub_freed(uv_handle_t *h) {
  fd_sub *sub = (fd_sub *)h->data;
  /* Here, not in unsubscribe: that may run inside this subscription's own callback. */
  napi_async_destroy(sub->env, sub->context);
  napi_delete_reference(sub->env, sub->callback);
  napi_delete_reference(sub->env, sub->self);
  free(sub);
}

static void sub_deliver(fd_sub *sub, napi_value *argv, size_t argc) {
  napi_env env = sub->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, result;
  if (napi_get_reference_value(env, sub->callback, &cb) == napi_ok && napi_get_reference_value(env, sub->self, &recv) == napi_ok) {
    if (napi_make_callback(env, sub->context, recv, cb, argc, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void sub_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  fd_sub *sub = (fd_sub *)h->data;
  if (sub->closed) return;
  napi_env env = sub->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) {
    napi_value argv[2];
    napi_get_null(env, &argv[0]);
    napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &argv[1]);
    sub_deliver(sub, argv, 2);
    napi_close_handle_scope(env, scope);
    return;
  }
  static char buf[262144];
  size_t len = 0;
  int err = 0;
  while (sizeof buf - len >= 65536) {
    ssize_t n = read(sub->fd, buf + len, sizeof buf - len); /* the fd is non-blocking */
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  if (len > 0) {
    napi_value argv[1];
    void *data;
    if (napi_create_buffer_copy(env, len, buf, &data, &argv[0]) == napi_ok) sub_deliver(sub, argv, 1);
  }
  if (err && !sub->closed) {
    napi_value argv[2];
    napi_get_null(env, &argv[0]);
    const char *name = err == ENOBUFS ? "ENOBUFS" : err == EBADF ? "EBADF" : err == EINVAL ? "EINVAL" : strerror(err);
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &argv[1]);
    sub_deliver(sub, argv, 2);
  }
  napi_close_handle_scope(env, scope);
}

/*
 * Watch `fd` on the event loop (closed on failure): a subscription object whose fd is read
 * by sub_readable and handed to `callback`. `ref`: whether it keeps the loop alive.
 */
static napi_value watch_fd(napi_env env, int fd, napi_value callback, const char *what, const char *resource, bool ref) {
  uv_loop_t *loop;
  char msg[96];
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(fd);
    snprintf(msg, sizeof msg, "%s: no event loop", what);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  fd_sub *sub = calloc(1, sizeof *sub);
  if (!sub) {
    close(fd);
    return throw_errno(env, ENOMEM, what);
  }
  sub->env = env;
  sub->fd = fd;
  sub->poll.data = sub;
  napi_value self, name;
  napi_create_object(env, &self);
  napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name);
  int uerr = uv_poll_init(loop, &sub->poll, fd);
  if (uerr == 0) uerr = uv_poll_start(&sub->poll, UV_READABLE, sub_readable);
  if (uerr != 0) {
    close(fd);
    free(sub);
    snprintf(msg, sizeof msg, "%s: uv_poll failed", what);
    napi_throw_error(env, uv_err_name(uerr), msg);
    return NULL;
  }
  if (!ref) uv_unref((uv_handle_t *)&sub->poll);
  napi_create_reference(env, callback, 1, &sub->callback);
  napi_create_reference(env, self, 1, &sub->self);
  napi_async_init(env, self, name, &sub->context);
  napi_wrap(env, self, sub, NULL, NULL, NULL);
  return self;
}

static napi_value js_nl_subscribe(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t rcvbuf;
  bool isarr = false;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 || napi_is_array(env, argv[0], &isarr) != napi_ok ||
      !isarr || napi_get_value_int32(env, argv[1], &rcvbuf) != napi_ok || napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "nlSubscribe(groups, rcvbuf, onMessages) expects an array of integers, an integer and a function");
    return NULL;
  }
  uint32_t ngroups = 0;
  napi_get_array_length(env, argv[0], &ngroups);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, errno, "socket(AF_NETLINK)");
  /* Groups 1..32 are joined by the bind itself (its nl_groups mask), higher ones one by one
   * after it. */
  int32_t groups[64];
  uint32_t mask = 0;
  if (ngroups > 64) {
    close(fd);
    napi_throw_type_error(env, NULL, "nlSubscribe: at most 64 groups");
    return NULL;
  }
  for (uint32_t i = 0; i < ngroups; i++) {
    napi_value v;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || napi_get_value_int32(env, v, &groups[i]) != napi_ok || groups[i] <= 0) {
      close(fd);
      napi_throw_type_error(env, NULL, "nlSubscribe: groups must be positive integers");
      return NULL;
    }
    if (groups[i] <= 32) mask |= 1u << (groups[i] - 1);
  }
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = mask;
  int one = 1;
  const char *what = NULL;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one) != 0) what = "setsockopt(NETLINK_NO_ENOBUFS)";
  else if (set_rcvbuf(fd, rcvbuf) != 0) what = "setsockopt(SO_RCVBUF)";
  else if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) what = "bind";
  for (uint32_t i = 0; !what && i < ngroups; i++) {
    if (groups[i] > 32 && setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof groups[i]) != 0) {
      what = "setsockopt(NETLINK_ADD_MEMBERSHIP)";
    }
  }
  if (what) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, what);
  }
  return watch_fd(env, fd, argv[2], "nlSubscribe", "ovnkube-route:netlink-events", true);
}

/*
 * inotifySubscribe(dir: string, content: boolean, onEvents: (buf: Buffer | null, error?: string) => void): object
 * An inotify queue (non-blocking, CLOEXEC) watching the directory `dir` (IN_ONLYDIR), read
 * like an event socket: whenever readable, every queued struct inotify_event, concatenated, in
 * one call, IN_Q_OVERFLOW included (libuv's fs.watch drops it: its wd matches no watcher). It
 * does not keep the event loop alive. The mask: names created, deleted and moved, and the
 * directory itself deleted or moved; with `content`, also files written (IN_MODIFY) and
 * attributes changed (IN_ATTRIB), the mask of fs.watch. Without `content` the watch costs
 * nothing to set up: an event of a child (IN_MODIFY, IN_ATTRIB) makes the kernel mark every
 * dentry of the directory at inotify_add_watch, negative ones included, and a directory whose
 * entries came and went by the hundred thousand (the netns dir of a busy node) has that many:
 * 26 ms of CPU each time on the machine this was measured on, against 0.03 ms.
 * unsubscribe(sub) closes it.
 */
static napi_value js_inotify_subscribe(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[4096];
  size_t len = 0;
  bool content = false;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1 ||
      napi_get_value_bool(env, argv[1], &content) != napi_ok || napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "inotifySubscribe(dir, content, onEvents) expects a path, a boolean and a function");
    return NULL;
  }
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "inotify_init1");
  uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  if (content) mask |= IN_MODIFY | IN_ATTRIB;
  if (inotify_add_watch(fd, path, mask) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "inotify_add_watch");
  }
  return watch_fd(env, fd, argv[2], "inotifySubscribe", "ovnkube-route:inotify", false);
}

static fd_sub *sub_arg(napi_env env, napi_callback_info info, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_unwrap(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return (fd_sub *)p;
}

static napi_value js_subscription_fd(napi_env env, napi_callback_info info) {
  fd_sub *sub = sub_arg(env, info, "subscriptionFd(sub) expects a subscription");
  if (!sub) return NULL;
  napi_value out;
  napi_create_int32(env, sub->closed ? -1 : sub->fd, &out);
  return out;
}

static napi_value js_unsubscribe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_remove_wrap(env, argv[0], &p) != napi_ok || !p) {
    return NULL; /* closed already (or not a subscription): nothing to do */
  }
  fd_sub *sub = (fd_sub *)p;
  sub->closed = true;
  /* uv_close takes the fd out of the loop's epoll set at once; then the fd can go, at once too.
   * The struct is freed once libuv is done with the handle. */
  uv_close((uv_handle_t *)&sub->poll, sub_freed);
  close(sub->fd);
  return NULL;
}

static const struct {
  const char *name;
  napi_callback fn;
} FUNCTIONS[] = {
  {"setns", js_setns},
  {"gettid", js_gettid},
  {"socketInfo", js_socket_info},
  {"socketQueue", js_socket_queue},
  {"rtnlOpen", js_rtnl_open},
  {"rtnlTalk", js_rtnl_talk},
  {"nlSubscribe", js_nl_subscribe},
  {"inotifySubscribe", js_inotify_subscribe},
  {"subscriptionFd", js_subscription_fd},
  {"unsubscribe", js_unsubscribe},
};

static const struct {
  const char *name;
  int32_t value;
} CONSTANTS[] = {
  {"CLONE_NEWNET", CLONE_NEWNET},
  {"AF_NETLINK", AF_NETLINK},
  {"NETLINK_ROUTE", NETLINK_ROUTE},
};

static napi_value init(napi_env env, napi_value exports) {
  napi_value v;
  for (size_t i = 0; i < sizeof FUNCTIONS / sizeof FUNCTIONS[0]; i++) {
    napi_create_function(env, FUNCTIONS[i].name, NAPI_AUTO_LENGTH, FUNCTIONS[i].fn, NULL, &v);
    napi_set_named_property(env, exports, FUNCTIONS[i].name, v);
  }
  for (size_t i = 0; i < sizeof CONSTANTS / sizeof CONSTANTS[0]; i++) {
    napi_create_int32(env, CONSTANTS[i].value, &v);
    napi_set_named_property(env, exports, CONSTANTS[i].name, v);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
