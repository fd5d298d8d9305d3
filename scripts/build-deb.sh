#!/usr/bin/env bash
# Builds the Debian package of vxnet with cargo-deb (README, "Install"): the release binary as
# /usr/bin/vxnet and /opt/cni/bin/vxnet (a symlink: the CNI plugin is vxnet itself), the systemd
# unit (contrib/vxnet.service, not enabled), /etc/default/vxnet for its flags, bash/zsh/fish
# completions and man pages generated from the binary. Installs cargo-deb with
# `cargo install cargo-deb --locked` when it is missing. Prints the .deb's path and contents;
# does not install it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked
fi

# `vxnet version` names the commit it was built from.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
if [[ -n $commit ]] && ! git diff --quiet HEAD 2>/dev/null; then
    commit+="-dirty"
fi
export VXNET_GIT_COMMIT=$commit

echo "== cargo build --release -p vxnet-control"
cargo build --release -p vxnet-control
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/release/vxnet
"$bin" version

# Generated from the binary's own clap definitions; cargo-deb takes them from here (paths
# under target/ are reserved for cargo's build products).
assets=deb-assets
rm -rf "$assets"
mkdir -p "$assets/man"
"$bin" completions bash >"$assets/vxnet.bash"
"$bin" completions zsh >"$assets/_vxnet"
"$bin" completions fish >"$assets/vxnet.fish"
"$bin" man --dir "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1

echo "== cargo deb -p vxnet-control --no-build --strip"
deb=$(cargo deb -p vxnet-control --no-build --strip | tail -n 1)
if [[ ! -f $deb ]]; then
    echo "build-deb: cargo deb did not name a package file (got: $deb)" >&2
    exit 1
fi
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
echo "$deb"
