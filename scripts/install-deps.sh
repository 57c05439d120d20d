#!/usr/bin/env bash
# Installs the Debian packages pycni needs to build, test and demo (idempotent: apt runs only when one is missing).
set -euo pipefail
PACKAGES=(
  iproute2 iptables nftables conntrack            # runtime: netlink tools for tests, firewall backends
  golang-go golang-github-appc-cni-dev           # the Go libcni test driver (tests/driver)
  containernetworking-plugins                    # the Go reference plugins, for side-by-side tests and bench
  make procps iputils-ping busybox-static time    # build entry point; ping, busybox, GNU time (bench RSS)
  strace                                         # reliability tests check file writes and locks with it
  python3-venv                                   # `python3 -m venv` when python3 is Debian's own
  podman runc                                    # tests/e2e/test_podman.py: podman 4.3 (CNI backend) with runc
  containerd                                     # tests/e2e/test_containerd.py: containerd 1.6 with its CRI plugin
  etcd-server etcd-client                        # tests/e2e/test_overlay.py: the store behind pycni-overlayd (3.4)
  iperf3                                         # scripts/bench.py row 7: pod-to-pod throughput over the overlay
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
