// The local control-plane harness: a real etcd + kube-apiserver for e2e tests and the demo.
export { startControlPlane, SERVICE_ACCOUNT_ISSUER, type ControlPlane, type ControlPlaneOptions } from './controlplane.js';
export { withControlPlane, E2E_TIER } from './tap.js';
export { findBinaries, repoRoot, type BinariesResult } from './binaries.js';
export { makePKI, issueCert, type ControlPlanePKI } from './pki.js';
export {
  applyManifests,
  kubeRequest,
  loadYamlDocuments,
  waitForCRDEstablished,
  type ApplyResult,
  type KubeResponse,
  type ManifestObject,
} from './k8s.js';
export { until, kubeConfigWithToken, serviceAccountKubeConfig } from './helpers.js';
