#!/usr/bin/env bash
# Uninstall ovnkube-route from a cluster so that no pod keeps a route of ours or a replaced
# default route. Order matters: the node agents are the only ones that can put a pod's
# original default route back, so they must see every pod's plan go away before they go.
#   1. delete the MutatingWebhookConfiguration: no pod gets a new plan;
#   2. delete every Route: the controller removes each pod's plan annotation, and each node's
#      agent removes the routes it wrote (rtnetlink protocol 111) and restores the saved
#      default route, then reports `"plan":""` in the pod's routes.k8s.ovn.org/status;
#   3. wait until no pod carries a plan and every reported pod says `"plan":""`;
#   4. delete the add-on (deploy/ or the Helm release) and the CRD.
# Usage: scripts/uninstall.sh [--helm RELEASE] [--namespace NS] [--timeout SECONDS] [--keep-crd]
# Uses kubectl (and helm with --helm) from PATH, or $KUBECTL / $HELM.
set -euo pipefail
kubectl=${KUBECTL:-kubectl}
helm=${HELM:-helm}
release=""
ns=ovnkube-route
timeout=300
keep_crd=0
here="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "uninstall: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --helm) [ $# -ge 2 ] || die "--helm needs a release name"; release="$2"; shift 2 ;;
    --namespace) [ $# -ge 2 ] || die "--namespace needs a value"; ns="$2"; shift 2 ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs a number of seconds"; timeout="$2"; shift 2 ;;
    --keep-crd) keep_crd=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "--timeout \"$timeout\": expected a whole number of seconds"
say() { echo "uninstall: $*" >&2; }

say "1/4 deleting the webhook configuration (no new plans)"
$kubectl delete mutatingwebhookconfiguration -l app.kubernetes.io/name=ovnkube-route --ignore-not-found >&2

if $kubectl get crd routes.k8s.ovn.org >/dev/null 2>&1; then
  say "2/4 deleting every Route (the controller removes the plans, the agents the routes)"
  $kubectl delete routes.k8s.ovn.org --all --wait=true >&2
fi

say "3/4 waiting until no pod has a plan and every agent report says \"plan\":\"\" (up to ${timeout} s)"
jp='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\t"}{.metadata.annotations.routes\.k8s\.ovn\.org/plan}{"\t"}{.metadata.annotations.routes\.k8s\.ovn\.org/status}{"\n"}{end}'
deadline=$(( $(date +%s) + timeout ))
while :; do
  pending=$($kubectl get pods -A -o jsonpath="$jp" | awk -F'\t' '$2 != "" || ($3 != "" && index($3, "\"plan\":\"\"") == 0) { print $1 }')
  [ -z "$pending" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "these pods still have a plan or routes of ours after ${timeout} s (is the agent running on their node?):"
    echo "$pending" >&2
    exit 1
  fi
  sleep 2
done
say "every pod is back to its own routes"

say "4/4 deleting the add-on"
if [ -n "$release" ]; then
  $helm uninstall "$release" --namespace "$ns" --wait >&2
  $kubectl delete namespace "$ns" --ignore-not-found >&2
else
  $kubectl delete -f "$here/deploy/" --ignore-not-found --wait=true >&2
fi
if [ "$keep_crd" = 0 ]; then $kubectl delete -f "$here/crds/" --ignore-not-found >&2; fi
say "done. Each node keeps /var/lib/ovnkube-route (empty once every default was restored) and /run/ovnkube-route; remove them by hand if you like"
