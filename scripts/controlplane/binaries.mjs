// Finds, or builds from the Go module proxy, the binaries of the local cluster: the control
// plane (kube-apiserver, etcd), the real node (kubelet, the Multus thin CNI plugin) and the
// rest of a real cluster (kube-controller-manager, kube-scheduler, kube-proxy, kubectl, helm).
// Lookup order: a prebuilt folder (KUBEBUILDER_ASSETS for the control plane,
// OVNKUBE_ROUTE_NODE_ASSETS for the node, OVNKUBE_ROUTE_CLUSTER_ASSETS for the rest), then the
// cached build under the user's cache dir, then a fresh build. Never downloads a prebuilt
// binary. The build is one `go build` of etcd, kube-apiserver, kubelet,
// kube-controller-manager, kube-scheduler, kube-proxy and kubectl in the module graph of
// go.mod beside this file, plus one of multus in multus/go.mod (its k8s.io/kubelet pin cannot
// share kubelet v1.36's graph) and one of helm in helm/go.mod (helm pins its own client
// libraries); all share Go's build and module caches. Safe when several processes ask at once: the
// build runs under a lock file, and the result is moved into place with one rename.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  openSync,
  closeSync,
  readdirSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Go module (go.mod + go.sum) that pins kube-apiserver, etcd and kubelet. */
export const moduleDir = dirname(fileURLToPath(import.meta.url));
/** The module that pins the Multus thin plugin. */
export const multusModuleDir = join(moduleDir, 'multus');
/** The module that pins helm. */
export const helmModuleDir = join(moduleDir, 'helm');
/** The binaries of each set: what the control plane needs, and what the node needs. */
export const SETS = {
  controlplane: ['etcd', 'kube-apiserver'],
  node: ['kubelet', 'multus'],
  cluster: ['kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubectl', 'helm'],
};
export const BINARIES = [...SETS.controlplane, ...SETS.node, ...SETS.cluster];
/** The main packages built in the module graph of go.mod (etcd's is renamed from `server`). */
const MAIN_GRAPH = [
  'go.etcd.io/etcd/server/v3',
  'k8s.io/kubernetes/cmd/kube-apiserver',
  'k8s.io/kubernetes/cmd/kubelet',
  'k8s.io/kubernetes/cmd/kube-controller-manager',
  'k8s.io/kubernetes/cmd/kube-scheduler',
  'k8s.io/kubernetes/cmd/kube-proxy',
  'k8s.io/kubernetes/cmd/kubectl',
];
/** Multus's own manifest, kept beside the binaries for its NetworkAttachmentDefinition CRD. */
export const MULTUS_MANIFEST = 'multus-daemonset.yml';
/** The environment variable naming a prebuilt folder for each set. */
const ASSETS_ENV = { controlplane: 'KUBEBUILDER_ASSETS', node: 'OVNKUBE_ROUTE_NODE_ASSETS', cluster: 'OVNKUBE_ROUTE_CLUSTER_ASSETS' };

/**
 * The versions pinned in the three go.mod files, and a hash of them and their go.sum files so
 * that any change of pin invalidates the cached build.
 * @returns {{k8s: string, etcd: string, multus: string, helm: string, pinHash: string}}
 */
export function pinnedVersions() {
  const files = [
    join(moduleDir, 'go.mod'),
    join(moduleDir, 'go.sum'),
    join(multusModuleDir, 'go.mod'),
    join(multusModuleDir, 'go.sum'),
    join(helmModuleDir, 'go.mod'),
    join(helmModuleDir, 'go.sum'),
  ];
  const [gomod, , multusMod, , helmMod] = files.map((f) => readFileSync(f, 'utf8'));
  const k8s = /^\s*(?:require\s+)?k8s\.io\/kubernetes\s+(v\S+)/m.exec(gomod)?.[1];
  const etcd = /^\s*go\.etcd\.io\/etcd\/server\/v3\s+(v\S+)/m.exec(gomod)?.[1];
  if (!k8s || !etcd) throw new Error(`${files[0]}: expected requirements on k8s.io/kubernetes and go.etcd.io/etcd/server/v3`);
  const multus = /^\s*(?:require\s+)?gopkg\.in\/k8snetworkplumbingwg\/multus-cni\.v4\s+(v\S+)/m.exec(multusMod)?.[1];
  if (!multus) throw new Error(`${files[2]}: expected a requirement on gopkg.in/k8snetworkplumbingwg/multus-cni.v4`);
  const helm = /^\s*(?:require\s+)?helm\.sh\/helm\/v3\s+(v\S+)/m.exec(helmMod)?.[1];
  if (!helm) throw new Error(`${files[4]}: expected a requirement on helm.sh/helm/v3`);
  const hash = createHash('sha256');
  for (const f of files) hash.update(readFileSync(f)).update('\0');
  return { k8s, etcd, multus, helm, pinHash: hash.digest('hex').slice(0, 16) };
}

/**
 * The cache folder for this pin set:
 * ${XDG_CACHE_HOME:-~/.cache}/ovnkube-route/controlplane/<k8s>-<pinHash>. The pin hash is in
 * the name so that checkouts with different pins (branches, worktrees) each keep their own
 * build instead of rebuilding over each other's.
 * @param {NodeJS.ProcessEnv} env
 * @param {{k8s: string, pinHash: string}} pins
 */
export function cacheDir(env, pins) {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'ovnkube-route', 'controlplane', `${pins.k8s}-${pins.pinHash}`);
}

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Which of `names` a folder lacks (empty when it holds them all, executable). */
function missingIn(dir, names = BINARIES) {
  return names.filter((b) => !executable(join(dir, b)));
}

/** The cached build when present, complete and built from the current pins, else null. */
function cachedBuild(dir, pins) {
  try {
    const info = JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8'));
    if (info.pinHash !== pins.pinHash) return null;
  } catch {
    return null;
  }
  return missingIn(dir).length === 0 && existsSync(join(dir, MULTUS_MANIFEST)) ? dir : null;
}

/**
 * The environment with Go's usual install dir (/usr/local/go/bin, where this project's
 * machines have it) appended to PATH, so a CI shell whose PATH lacks it still finds `go`.
 */
function withGoPath(env) {
  const path = env.PATH ?? '';
  return path.split(':').includes('/usr/local/go/bin') ? env : { ...env, PATH: path ? `${path}:/usr/local/go/bin` : '/usr/local/go/bin' };
}

/** Why Go cannot build here, or null when `go` runs. */
export function goUnavailable(env) {
  const r = spawnSync('go', ['version'], { env: withGoPath(env), encoding: 'utf8' });
  if (r.error) return `no Go toolchain on PATH (${r.error.message}); install Go >= 1.26 or set KUBEBUILDER_ASSETS`;
  if (r.status !== 0) return `\`go version\` failed: ${r.stderr.trim()}`;
  return null;
}

/**
 * Locate one set of binaries ('controlplane' or 'node') without building.
 * @returns {{dir: string, source: string} | {dir: null, reason: string, fatal?: boolean}}
 */
export function locate(env, set = 'controlplane') {
  const names = SETS[set];
  if (!names) throw new Error(`unknown binary set ${set}: expected ${Object.keys(SETS).join(' or ')}`);
  const assets = env[ASSETS_ENV[set]];
  if (assets) {
    const missing = missingIn(assets, names);
    if (set === 'node' && !existsSync(join(assets, MULTUS_MANIFEST))) missing.push(MULTUS_MANIFEST);
    // An explicit folder that is incomplete is an error, not a reason to build silently.
    if (missing.length) return { dir: null, reason: `${ASSETS_ENV[set]}=${assets} lacks ${missing.join(', ')}`, fatal: true };
    return { dir: assets, source: ASSETS_ENV[set] };
  }
  const pins = pinnedVersions();
  const dir = cacheDir(env, pins);
  if (cachedBuild(dir, pins)) return { dir, source: 'cache' };
  return { dir: null, reason: `no cached build at ${dir}` };
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Take an exclusive lock file, waiting for a live holder and stealing a dead one's. */
async function withLock(path, log, fn) {
  mkdirSync(dirname(path), { recursive: true });
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (!Number.isInteger(holder) || !pidAlive(holder)) {
        // A crashed builder left its lock: remove it, unless another waiter got there first.
        // (Two waiters stealing in the same millisecond could still race; a crashed build is
        // rare and the worst case is one redundant build into a private temp folder.)
        try {
          if (readFileSync(path, 'utf8') === String(holder)) rmSync(path);
        } catch {
          /* gone already */
        }
        continue;
      }
      if (!announced) log(`waiting for the build held by pid ${holder} (${path})`);
      announced = true;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

/**
 * Run a command in its own process group with its output on our stderr (stdout stays
 * machine-readable). If this process is interrupted meanwhile, the whole group (go and its
 * compilers) is killed and `onAbort` cleans up before we exit.
 */
function run(cmd, args, opts, onAbort) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 2, 2] });
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const abort = (sig) => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      onAbort();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    for (const sig of signals) process.on(sig, abort);
    const done = () => {
      for (const sig of signals) process.off(sig, abort);
    };
    child.on('error', (e) => {
      done();
      reject(e);
    });
    child.on('exit', (code, sig) => {
      done();
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${sig ?? code}`));
    });
  });
}

/**
 * Linker flags: strip symbols and DWARF (-s -w: a third smaller, faster link), and stamp the
 * version that Kubernetes' own build (hack/lib/version.sh) injects, so /version and
 * `kube-apiserver --version` say v1.36.3 instead of v0.0.0-master.
 */
function ldflags(pins) {
  const [major, minor] = pins.k8s.replace(/^v/, '').split('.');
  const v = 'k8s.io/component-base/version';
  return [
    '-s',
    '-w',
    `-X ${v}.gitVersion=${pins.k8s}`,
    `-X ${v}.gitMajor=${major}`,
    `-X ${v}.gitMinor=${minor}`,
    `-X ${v}.gitTreeState=clean`,
    `-X ${v}.buildDate=1970-01-01T00:00:00Z`,
  ].join(' ');
}

/**
 * Build every binary of BINARIES into the cache folder (under a lock; a no-op when another
 * process built them meanwhile). `go` output goes to stderr so stdout stays machine-readable.
 * @returns {Promise<string>} the folder holding them all
 */
export async function build(env, log) {
  const pins = pinnedVersions();
  const dir = cacheDir(env, pins);
  const lock = `${dir}.lock`;
  return withLock(lock, log, async () => {
    if (cachedBuild(dir, pins)) return dir;
    const why = goUnavailable(env);
    if (why) throw new Error(`cannot build kube-apiserver ${pins.k8s} / etcd ${pins.etcd}: ${why}`);
    // Under the lock, any other build folder is what a killed builder left behind.
    for (const f of readdirSync(dirname(dir))) {
      if (f.startsWith(`${basename(dir)}.build-`)) rmSync(join(dirname(dir), f), { recursive: true, force: true });
    }
    const tmp = `${dir}.build-${process.pid}`;
    mkdirSync(tmp, { recursive: true });
    log(
      `building Kubernetes ${pins.k8s} (kube-apiserver, kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl), etcd ${pins.etcd}, multus ${pins.multus} and helm ${pins.helm} from the Go module proxy into ${dir}`,
    );
    log('the first build takes about 15-30 minutes on a 2-core machine (much more under load); later runs use the cache');
    const t0 = Date.now();
    const goEnv = {
      ...withGoPath(env),
      // -trimpath: reproducible and smaller; -mod=readonly: go.mod/go.sum are the pins, never edited.
      GOFLAGS: `${env.GOFLAGS ?? ''} -trimpath -mod=readonly`.trim(),
      CGO_ENABLED: '0',
      // Never fetch another toolchain (machines cannot): fail clearly if the local Go is too old.
      GOTOOLCHAIN: 'local',
    };
    try {
      const cleanup = () => {
        rmSync(tmp, { recursive: true, force: true });
        rmSync(lock, { force: true });
      };
      // One `go build` of the seven tools shares the compile of their common dependencies.
      const step = (what) => {
        log(`${what} (${Math.round((Date.now() - t0) / 1000)} s so far)`);
      };
      const times = {};
      const timed = async (name, fn) => {
        const t = Date.now();
        await fn();
        times[name] = Math.round((Date.now() - t) / 1000);
      };
      step('go build etcd kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy kubectl');
      await timed('kubernetes', () =>
        run('go', ['build', `-ldflags=${ldflags(pins)}`, '-o', tmp + '/', ...MAIN_GRAPH], { cwd: moduleDir, env: goEnv }, cleanup),
      );
      step('go build multus');
      await timed('multus', () =>
        run(
          'go',
          ['build', '-ldflags=-s -w', '-o', tmp + '/', 'gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus'],
          { cwd: multusModuleDir, env: goEnv },
          cleanup,
        ),
      );
      step('go build helm');
      // helm stamps its version the way its Makefile does, so `helm version` says v3.22.0.
      await timed('helm', () =>
        run(
          'go',
          ['build', `-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=${pins.helm}`, '-o', tmp + '/', 'helm.sh/helm/v3/cmd/helm'],
          { cwd: helmModuleDir, env: goEnv },
          cleanup,
        ),
      );
      // The NetworkAttachmentDefinition CRD comes from the manifest multus ships in its module.
      const multusSrc = spawnSync('go', ['list', '-m', '-f', '{{.Dir}}', 'gopkg.in/k8snetworkplumbingwg/multus-cni.v4'], {
        cwd: multusModuleDir,
        env: goEnv,
        encoding: 'utf8',
      }).stdout.trim();
      copyFileSync(join(multusSrc, 'deployments', MULTUS_MANIFEST), join(tmp, MULTUS_MANIFEST));
      // The etcd main package is the module root go.etcd.io/etcd/server/v3, so `go build`
      // names its binary after the element before the major version: `server`.
      renameSync(join(tmp, 'server'), join(tmp, 'etcd'));
      const missing = missingIn(tmp);
      if (missing.length) throw new Error(`go build left no ${missing.join(', ')} in ${tmp}`);
      const goVersion = spawnSync('go', ['version'], { env: goEnv, encoding: 'utf8' }).stdout.trim();
      const seconds = Math.round((Date.now() - t0) / 1000);
      writeFileSync(
        join(tmp, 'build.json'),
        JSON.stringify({ ...pins, goVersion, seconds, times, builtAt: new Date().toISOString() }, null, 2) + '\n',
      );
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
      log(`built in ${seconds} s: ${dir}`);
      return dir;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

/**
 * Locate one set of binaries, building them when `allowBuild` and they are nowhere to be found.
 * @returns {Promise<{dir: string, source: string} | {dir: null, reason: string}>}
 */
export async function ensure(env, { allowBuild, log, set = 'controlplane' }) {
  const found = locate(env, set);
  if (found.dir || found.fatal || !allowBuild) return found;
  const why = goUnavailable(env);
  if (why) return { dir: null, reason: `${found.reason}, and cannot build: ${why}` };
  return { dir: await build(env, log), source: 'build' };
}
