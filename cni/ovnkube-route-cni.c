/*
 * ovnkube-route-cni: a chained CNI plugin that asks the node agent to write a pod's routes
 * into its netns during CNI ADD, so they are in place before any app container starts.
 *
 * It is small on purpose: no routing logic, no Kubernetes client, no plan parsing. ADD sends
 * one JSON line {v, command, containerId, netns, ifName, namespace, name, uid} to the agent's
 * unix socket and waits for one JSON line back, at most `timeoutMs`. Whatever happens (agent
 * down, deadline passed, an error), it is FAIL-OPEN: the pod starts, the prevResult is passed
 * on unchanged, and a marker file <missedDir>/<containerId> tells the agent, which then
 * applies the routes as soon as it can and reports that they came after the start. DEL
 * removes the marker. Statically linked, so the same binary works from any host's CNI bin dir.
 *
 * Configuration (the plugin's entry in a conflist; every key optional):
 *   "socket": "/run/ovnkube-route/cni.sock"     the agent's socket
 *   "timeoutMs": 3000                            the deadline for the agent's answer
 *   "missedDir": "/run/ovnkube-route/cni-missed" where fail-open markers go
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_INPUT (1 << 20)
#define MAX_ANSWER 8192

static const char *SUPPORTED = "{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}";

static void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ovnkube-route-cni: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

/* Skip a JSON value starting at p (whitespace already skipped); returns the char after it, or NULL. */
static const char *skip_value(const char *p) {
  if (*p == '"') {
    for (p++; *p; p++) {
      if (*p == '\\') {
        if (!*++p) return NULL;
      } else if (*p == '"') {
        return p + 1;
      }
    }
    return NULL;
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; *p; p++) {
      if (*p == '"') {
        p = skip_value(p);
        if (!p) return NULL;
        p--;
      } else if (*p == '{' || *p == '[') {
        depth++;
      } else if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
    }
    return NULL;
  }
  while (*p && !strchr(",}] \t\r\n", *p)) p++;
  return p;
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
  return p;
}

/* The raw JSON value of top-level key `key` of object `json` (start and length), or NULL. */
static const char *find_key(const char *json, const char *key, size_t *len) {
  const char *p = skip_ws(json);
  if (*p != '{') return NULL;
  p = skip_ws(p + 1);
  size_t klen = strlen(key);
  while (*p == '"') {
    const char *kend = skip_value(p);
    if (!kend) return NULL;
    int match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
    p = skip_ws(kend);
    if (*p != ':') return NULL;
    p = skip_ws(p + 1);
    const char *vend = skip_value(p);
    if (!vend) return NULL;
    if (match) {
      *len = (size_t)(vend - p);
      return p;
    }
    p = skip_ws(vend);
    if (*p == ',') p = skip_ws(p + 1);
  }
  return NULL;
}

/* A top-level string value (no escapes expected: paths and numbers), copied into out. */
static int string_key(const char *json, const char *key, char *out, size_t outlen) {
  size_t len;
  const char *v = find_key(json, key, &len);
  if (!v || *v != '"' || len < 2 || len - 2 >= outlen || memchr(v + 1, '\\', len - 2)) return 0;
  memcpy(out, v + 1, len - 2);
  out[len - 2] = 0;
  return 1;
}

/* The value of KEY in CNI_ARGS ("K1=v1;K2=v2"), copied into out. */
static int cni_arg(const char *args, const char *key, char *out, size_t outlen) {
  size_t klen = strlen(key);
  for (const char *p = args; p && *p;) {
    const char *end = strchr(p, ';');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
      size_t vlen = n - klen - 1;
      if (vlen >= outlen) return 0;
      memcpy(out, p + klen + 1, vlen);
      out[vlen] = 0;
      return 1;
    }
    p = end ? end + 1 : NULL;
  }
  return 0;
}

/* Append s to the request as a JSON string (escaping quotes, backslashes and controls). */
static void put_json_string(char *buf, size_t cap, size_t *n, const char *s) {
  if (*n < cap) buf[(*n)++] = '"';
  for (; *s && *n + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[(*n)++] = '\\';
      buf[(*n)++] = (char)c;
    } else if (c < 0x20) {
      *n += (size_t)snprintf(buf + *n, cap - *n, "\\u%04x", c);
    } else {
      buf[(*n)++] = (char)c;
    }
  }
  if (*n < cap) buf[(*n)++] = '"';
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Send the request and read one answer line within the deadline. Returns 1 and fills
 * `answer` on an answer; 0 with `why` set otherwise.
 */
static int ask_agent(const char *socket_path, const char *request, long timeout_ms, char *answer, size_t cap, char *why, size_t whylen) {
  long long deadline = now_ms() + timeout_ms;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(why, whylen, "socket: %s", strerror(errno));
    return 0;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof(addr.sun_path)) {
    snprintf(why, whylen, "socket path too long: %s", socket_path);
    close(fd);
    return 0;
  }
  strcpy(addr.sun_path, socket_path);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
    snprintf(why, whylen, "agent unreachable at %s: %s", socket_path, strerror(errno));
    close(fd);
    return 0;
  }
  size_t sent = 0, want = strlen(request), got = 0;
  while (1) {
    long left = (long)(deadline - now_ms());
    if (left <= 0) {
      snprintf(why, whylen, "no answer from the agent within %ld ms", timeout_ms);
      close(fd);
      return 0;
    }
    struct pollfd pfd = {.fd = fd, .events = sent < want ? POLLOUT : POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    if (sent < want) {
      ssize_t w = write(fd, request + sent, want - sent);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        snprintf(why, whylen, "agent unreachable at %s: %s", socket_path, strerror(errno));
        close(fd);
        return 0;
      }
      sent += (size_t)w;
      continue;
    }
    ssize_t rd = read(fd, answer + got, cap - 1 - got);
    if (rd < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      snprintf(why, whylen, "reading the agent's answer: %s", strerror(errno));
      close(fd);
      return 0;
    }
    if (rd == 0 || got + (size_t)rd >= cap - 1 || memchr(answer + got, '\n', (size_t)rd)) {
      got += (size_t)(rd > 0 ? rd : 0);
      answer[got] = 0;
      close(fd);
      if (got == 0) {
        snprintf(why, whylen, "the agent closed the connection with no answer");
        return 0;
      }
      return 1;
    }
    got += (size_t)rd;
  }
}

static void write_marker(const char *dir, const char *cid, const char *why) {
  char path[4096];
  if (!*cid || strchr(cid, '/') || snprintf(path, sizeof(path), "%s/%s", dir, cid) >= (int)sizeof(path)) return;
  mkdir(dir, 0700);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    logf_("cannot write the fail-open marker %s: %s", path, strerror(errno));
    return;
  }
  ssize_t ignored = write(fd, why, strlen(why));
  (void)ignored;
  close(fd);
}

int main(void) {
  const char *cmd = getenv("CNI_COMMAND");
  if (!cmd) {
    fprintf(stderr, "ovnkube-route-cni: a CNI plugin (CNI_COMMAND is not set); see the project README\n");
    return 1;
  }
  if (strcmp(cmd, "VERSION") == 0) {
    puts(SUPPORTED);
    return 0;
  }
  static char input[MAX_INPUT + 1];
  size_t n = 0;
  ssize_t r;
  while (n < MAX_INPUT && (r = read(0, input + n, MAX_INPUT - n)) != 0) {
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    n += (size_t)r;
  }
  input[n] = 0;
  char sock[512] = "/run/ovnkube-route/cni.sock", missed[512] = "/run/ovnkube-route/cni-missed", version[32] = "0.3.1";
  string_key(input, "socket", sock, sizeof(sock));
  string_key(input, "missedDir", missed, sizeof(missed));
  string_key(input, "cniVersion", version, sizeof(version));
  long timeout_ms = 3000;
  size_t tlen;
  const char *t = find_key(input, "timeoutMs", &tlen);
  if (t && *t >= '0' && *t <= '9') timeout_ms = strtol(t, NULL, 10);
  const char *cid = getenv("CNI_CONTAINERID") ? getenv("CNI_CONTAINERID") : "";

  if (strcmp(cmd, "DEL") == 0) {
    char path[4096];
    if (*cid && !strchr(cid, '/') && snprintf(path, sizeof(path), "%s/%s", missed, cid) < (int)sizeof(path)) unlink(path);
    return 0;
  }
  if (strcmp(cmd, "ADD") != 0) return 0; /* CHECK, GC, STATUS: nothing of ours to check */

  const char *args = getenv("CNI_ARGS") ? getenv("CNI_ARGS") : "";
  char ns[256] = "", name[256] = "", uid[128] = "";
  cni_arg(args, "K8S_POD_NAMESPACE", ns, sizeof(ns));
  cni_arg(args, "K8S_POD_NAME", name, sizeof(name));
  cni_arg(args, "K8S_POD_UID", uid, sizeof(uid));
  if (*ns && *name) {
    char req[4096];
    size_t q = 0;
    q += (size_t)snprintf(req, sizeof(req), "{\"v\":1,\"command\":\"ADD\",\"containerId\":");
    put_json_string(req, sizeof(req), &q, cid);
    const char *fields[][2] = {{"netns", getenv("CNI_NETNS")}, {"ifName", getenv("CNI_IFNAME")}, {"namespace", ns}, {"name", name}, {"uid", uid}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
      q += (size_t)snprintf(req + q, sizeof(req) - q, ",\"%s\":", fields[i][0]);
      put_json_string(req, sizeof(req), &q, fields[i][1] ? fields[i][1] : "");
    }
    if (q + 3 < sizeof(req)) {
      req[q++] = '}';
      req[q++] = '\n';
      req[q] = 0;
      char answer[MAX_ANSWER], why[600];
      if (!ask_agent(sock, req, timeout_ms, answer, sizeof(answer), why, sizeof(why))) {
        logf_("pod %s/%s: routes not applied at CNI time (%s); the pod starts and the agent applies them when it can", ns, name, why);
        write_marker(missed, cid, why);
      } else {
        size_t ol;
        const char *ok = find_key(answer, "ok", &ol);
        if (!ok || strncmp(ok, "true", 4) != 0) {
          char reason[300] = "the agent answered without ok";
          string_key(answer, "reason", reason, sizeof(reason));
          logf_("pod %s/%s: routes not applied at CNI time (%s)", ns, name, reason);
        }
      }
    }
  }
  /* Pass the previous result on unchanged (a chained plugin must). */
  size_t plen;
  const char *prev = find_key(input, "prevResult", &plen);
  if (prev && *prev == '{') {
    fwrite(prev, 1, plen, stdout);
    putchar('\n');
  } else {
    printf("{\"cniVersion\":\"%s\"}\n", version);
  }
  return 0;
}
