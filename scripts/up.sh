#!/bin/sh
# Builds ferrokube and runs the single-node cluster on this machine:
#   ./scripts/up.sh            (data in /var/lib/ferrokube, API on 127.0.0.1:6443)
# Extra arguments go to `ferrokube up` (e.g. --listen 0.0.0.0:6443).
set -eu
cd "$(dirname "$0")/.."
. ./scripts/lib.sh

ensure_packages build-essential pkg-config protobuf-compiler ca-certificates \
    containerd runc containernetworking-plugins iptables nftables busybox-static
ensure_rust

cargo build --release --bin ferrokube
target_dir="${CARGO_TARGET_DIR:-target}"
$SUDO mkdir -p /var/lib/ferrokube/kubelet/images
# The example manifests run busybox; seed it from busybox-static so they
# run on a machine with no registry (the kubelet imports images/*.tar and
# never pulls over an imported image).
if [ ! -e /var/lib/ferrokube/kubelet/images/busybox.tar ]; then
    $SUDO "$target_dir/release/ferrokube" image busybox \
        --out /var/lib/ferrokube/kubelet/images/busybox.tar
fi
echo "kubectl: export KUBECONFIG=/var/lib/ferrokube/kubeconfig"
exec $SUDO "$target_dir/release/ferrokube" up --data-dir /var/lib/ferrokube "$@"
