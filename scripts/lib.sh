# Shared by up.sh and test.sh: install missing Debian packages and a Rust
# toolchain, idempotently (nothing is fetched when all is present).

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# ensure_packages PKG...: apt-get installs the packages that are not yet
# installed; skips apt entirely when all are.
ensure_packages() {
    missing=""
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $pkg"
        fi
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        $SUDO apt-get update
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y $missing
    fi
}

# ensure_rust: cargo from rustup (Debian's cargo is too old for edition 2024).
ensure_rust() {
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        ensure_packages curl ca-certificates
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    export PATH
}

# ensure_kubectl: the tests drive the stock kubectl. It is the `kubectl`
# package of the Kubernetes (or Google Cloud) apt repository.
ensure_kubectl() {
    if ! command -v kubectl >/dev/null 2>&1; then
        if apt-cache show kubectl >/dev/null 2>&1; then
            ensure_packages kubectl
        else
            echo "kubectl is not installed and no configured apt repository has it;" >&2
            echo "see https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/" >&2
            exit 1
        fi
    fi
}
