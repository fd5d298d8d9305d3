#!/usr/bin/env bash
# Installs what the lab, the tests and the benchmark run: iproute2 (ip, bridge), ping, ethtool,
# arping, iperf3, tcpdump, tshark, nsenter (util-linux), python3, nft (nftables: the chaos
# suite's and recovery tests' cuts), gnuplot (the bench's plots), wg (wireguard-tools: the
# bench's kernel-wg mode, which also needs a kernel with WireGuard), dockerd (docker.io: the lab's
# Docker Engines, one per lab host) and a static busybox (busybox-static: the rootfs of the
# lab's container image; a dynamically linked busybox would not run in it). Debian/Ubuntu, as
# root. Does nothing when everything is already there. The lab starts dockerds of its own; a
# system one (if the package starts it) is neither needed nor used.
#
# With --bench (scripts/demo.sh passes it), also what only the benchmark needs: boringtun-cli,
# Cloudflare's userspace WireGuard, for vxnet-bench's userspace-wg mode (the sealed anchor on
# kernels without WireGuard), built by cargo into /opt/vxnet-tools/bin (a few minutes once; the
# test suite does not need it).
set -euo pipefail

bench=0
for arg in "$@"; do
    case $arg in
        --bench) bench=1 ;;
        *) echo "install-deps: unknown argument: $arg (only --bench)" >&2; exit 2 ;;
    esac
done

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip       || need+=(iproute2)
have bridge   || need+=(iproute2)
have ping     || need+=(iputils-ping)
have arping   || need+=(arping)
have iperf3   || need+=(iperf3)
have tcpdump  || need+=(tcpdump)
have tshark   || need+=(tshark)
have nsenter  || need+=(util-linux)
have ethtool  || need+=(ethtool)
have python3  || need+=(python3)
have nft      || need+=(nftables)
have gnuplot  || need+=(gnuplot-nox)
have wg       || need+=(wireguard-tools)
have dig      || need+=(dnsutils)
have promtool || need+=(prometheus)
have dockerd  || need+=(docker.io)
have podman   || need+=(podman)
# The CNI test's reference plugins in /usr/lib/cni (tuning, chained after vxnet).
[[ -x /usr/lib/cni/tuning ]] || need+=(containernetworking-plugins)
# The busybox package's /bin/busybox is dynamically linked; only busybox-static's runs in an
# image without a libc.
static_busybox() { dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; }
static_busybox || need+=(busybox-static)

if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: need root to install: ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is missing; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
# The suite checks formatting and lints: rustfmt and clippy come with rustup's toolchain.
for tool in fmt clippy; do
    if ! cargo "$tool" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            rustup component add "$([[ $tool == fmt ]] && echo rustfmt || echo clippy)"
        else
            echo "install-deps: cargo $tool is missing; install it with your Rust toolchain" >&2
            exit 1
        fi
    fi
done
if ((bench)) && ! command -v boringtun-cli >/dev/null 2>&1 \
    && [[ ! -x /opt/vxnet-tools/bin/boringtun-cli ]]; then
    echo "install-deps: building boringtun-cli 0.7.1 into /opt/vxnet-tools (cargo install)"
    cargo install boringtun-cli --version 0.7.1 --locked --root /opt/vxnet-tools
fi
