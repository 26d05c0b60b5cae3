#!/usr/bin/env bash
# System packages the build and the test tiers need, installed only when missing (Debian):
#   g++ make python3  - node-gyp builds the setns addon (injector/native)
#   iproute2          - `ip netns` / `ip -j route` in the kernel tier
#   openssl           - certs/ and the control-plane harness make CAs and serving certs
# Go (for building the test control plane) comes with the machine image; see README.
set -euo pipefail
need=()
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "prereqs: missing ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2; exit 1; fi
  echo "prereqs: installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "prereqs: ok (node $(node --version), go: $(command -v go >/dev/null && go version | cut -d' ' -f3 || echo none))" >&2
