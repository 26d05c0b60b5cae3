#!/usr/bin/env bash
# System packages the build and the test tiers need, installed only when missing (Debian):
#   g++ make python3  - node-gyp builds the setns addon (injector/native)
#   iproute2          - `ip netns` / `ip -j route` in the kernel tier
#   openssl           - certs/ and the control-plane harness make CAs and serving certs
#   containerd runc containernetworking-plugins busybox-static iptables
#                     - the real node tier (test/node-e2e, npm run node:up): the container
#                       runtime, the standard CNI plugins (/usr/lib/cni), the static busybox the
#                       node image is made of, and the FORWARD guard that keeps pod traffic on
#                       this machine. Nothing is started by their install.
# Go (for building the test control plane and kubelet) comes with the machine image; see docs/development.md.
set -euo pipefail
need=()
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/ptp ] && [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v iptables >/dev/null || need+=(iptables)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "prereqs: missing ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2; exit 1; fi
  echo "prereqs: installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "prereqs: ok (node $(node --version), go: $(command -v go >/dev/null && go version | cut -d' ' -f3 || echo none))" >&2
