/**
 * The flags every live-cluster command takes, apart from bin/kube.ts: a command that also
 * works offline (plan, routes) imports these at start and the cluster code (node:https,
 * the client) only when a live run needs it.
 */

/** The flags every live-cluster command takes (parseArgs options). */
export const KUBE_FLAGS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
} as const;

/** --help lines for KUBE_FLAGS. */
export const KUBE_FLAGS_HELP = `      --kubeconfig FILE     kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
      --context NAME        kubeconfig context to use (default: its current-context)
  -n, --namespace NS        namespace of --pod NAME (default: the context's namespace, else "default")`;

export interface KubeFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}
