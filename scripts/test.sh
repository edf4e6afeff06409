#!/bin/sh
# Installs what the tests need (idempotent), builds everything, and runs the
# whole suite: unit tests, the storage conformance suite on both backends,
# and the end-to-end tests with the real etcd and the real kubectl.
set -eu
cd "$(dirname "$0")/.."
. ./scripts/lib.sh

# Debian packages, installed with apt-get update + apt-get install -y when
# any is missing (ensure_packages in scripts/lib.sh).
ensure_packages build-essential pkg-config ca-certificates \
    containerd runc etcd-server etcd-client busybox-static containernetworking-plugins \
    iptables nftables protobuf-compiler docker-registry skopeo
ensure_rust
ensure_kubectl

cargo build --workspace --all-targets
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
