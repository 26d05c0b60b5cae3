/**
 * Installing the CNI plugin on a node, as CNI add-ons do (istio-cni's install-cni): copy the
 * binary into the host's CNI bin dir, and chain an entry for it at the end of the node's
 * primary network configuration (the first file of the conf dir, in libcni's order), so the
 * runtime calls it after every other plugin of the pod's default network, Multus included,
 * has made the pod's interfaces. A single-plugin .conf becomes a .conflist of the same name
 * (the original plugin first). Both writes are atomic (a temp file renamed into place).
 * uninstall takes the entry out again and removes the binary. The plugin fails open, so a
 * conf left behind by a crashed agent only costs each pod start one refused connect.
 */
import { chmodSync, copyFileSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withCause } from '../../platform/errors.js';

/** The plugin's type (binary name) in the conf and the bin dir. */
export const CNI_PLUGIN_TYPE = 'ovnkube-route-cni';
/** The plugin binary built by scripts/build.mjs (dist/cni/), beside dist/injector/. */
export const CNI_PLUGIN_BINARY = fileURLToPath(new URL('../../cni/ovnkube-route-cni', import.meta.url));

export interface CniInstallOptions {
  binDir: string;
  confDir: string;
  socket: string;
  missedDir: string;
  /** The plugin's own deadline for the agent's answer (a little more than the agent's). */
  timeoutMs: number;
  /** The binary to install (default: the one built into dist/cni). */
  binary?: string;
}

export interface CniInstallResult {
  /** The conf file now holding the chained entry. */
  confFile: string;
  /** The file it replaced, when a .conf became a .conflist. */
  replaced?: string;
}

/** The primary network config of a conf dir: its first .conf/.conflist/.json file by name, as libcni picks it. */
export function primaryConf(confDir: string): string | null {
  const files = readdirSync(confDir)
    .filter((f) => /\.(conflist|conf|json)$/.test(f) && !f.startsWith('.'))
    .sort();
  return files.length ? join(confDir, files[0]!) : null;
}

function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.ovnkube-route-tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

/** Copy the plugin in and chain it into the primary conf (idempotent: an existing entry is updated). */
export function installCni(o: CniInstallOptions): CniInstallResult {
  const binTarget = join(o.binDir, CNI_PLUGIN_TYPE);
  const tmp = `${binTarget}.ovnkube-route-tmp`;
  copyFileSync(o.binary ?? CNI_PLUGIN_BINARY, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, binTarget);
  const file = primaryConf(o.confDir);
  if (!file) throw new Error(`no CNI network config in ${o.confDir} to chain the plugin into (the pod network's plugin writes one first)`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(withCause(`${file}: not JSON`, e), { cause: e });
  }
  const entry = { type: CNI_PLUGIN_TYPE, socket: o.socket, missedDir: o.missedDir, timeoutMs: o.timeoutMs };
  if (Array.isArray(doc.plugins)) {
    const all = doc.plugins as Array<Record<string, unknown>>;
    const before = all.find((p) => p.type === CNI_PLUGIN_TYPE);
    doc.plugins = [
      ...all.filter((p) => p !== before),
      { ...entry, ...(before?.convertedFromConf === true ? { convertedFromConf: true } : {}) },
    ];
    writeAtomic(file, JSON.stringify(doc, null, 2) + '\n', 0o644);
    return { confFile: file };
  }
  if (typeof doc.type !== 'string') throw new Error(`${file}: neither a conflist (plugins) nor a plugin conf (type)`);
  const { cniVersion, name, ...plugin } = doc;
  // Remembered in our entry, so that uninstall gives the node its .conf back.
  const list = { cniVersion, name, plugins: [plugin, { ...entry, convertedFromConf: true }] };
  const target = file.replace(/\.(conf|json)$/, '.conflist');
  writeAtomic(target, JSON.stringify(list, null, 2) + '\n', 0o644);
  if (target !== file) rmSync(file);
  return { confFile: target, replaced: file };
}

/**
 * Take the plugin out of the primary conf (a .conflist made from a .conf goes back to the
 * .conf it was) and remove the binary. Safe when nothing is installed.
 */
export function uninstallCni(o: Pick<CniInstallOptions, 'binDir' | 'confDir'>): void {
  const file = primaryConf(o.confDir);
  if (file) {
    let doc: Record<string, unknown> | null = null;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch {
      doc = null; // not ours to fix
    }
    const plugins = doc && Array.isArray(doc.plugins) ? (doc.plugins as Array<Record<string, unknown>>) : null;
    const ours = plugins?.find((p) => p.type === CNI_PLUGIN_TYPE);
    if (doc && plugins && ours) {
      const rest = plugins.filter((p) => p.type !== CNI_PLUGIN_TYPE);
      if (ours.convertedFromConf === true && rest.length === 1 && file.endsWith('.conflist')) {
        const back = file.replace(/\.conflist$/, '.conf');
        writeAtomic(back, JSON.stringify({ cniVersion: doc.cniVersion, name: doc.name, ...rest[0] }, null, 2) + '\n', 0o644);
        rmSync(file);
      } else {
        writeAtomic(file, JSON.stringify({ ...doc, plugins: rest }, null, 2) + '\n', 0o644);
      }
    }
  }
  rmSync(join(o.binDir, CNI_PLUGIN_TYPE), { force: true });
}
