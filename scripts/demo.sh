#!/usr/bin/env bash
# The vxnet lab demo: two "hosts" (network namespaces on one underlay bridge), a vxnet daemon
# on each, joined into one cluster, one overlay network, a container on each host, a ping
# across — then vxnet-bench,
# which measures vxnet against Linux kernel vxlan and the bare underlay on the same machine.
# Needs root. Everything it makes lives in namespaces named vxdemo-* and is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --bench
echo "== building (release)"
cargo build --release --workspace --bins -q
VXNET=$PWD/target/release/vxnet
# Leftovers of an interrupted demo.
for ns in vxdemo-u vxdemo-h1 vxdemo-h2 vxdemo-c1 vxdemo-c2; do ip netns del "$ns" 2>/dev/null || true; done
WORK=$(mktemp -d /tmp/vxdemo.XXXXXX)

cleanup() {
    set +e
    pkill -TERM -f "vxnet daemon .*--data-dir $WORK" 2>/dev/null
    sleep 1
    pkill -KILL -f "vxnet daemon .*--data-dir $WORK" 2>/dev/null
    # Sandboxes are namespaces bind-mounted under each daemon's data dir.
    grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | xargs -r -n1 umount -l
    for ns in vxdemo-u vxdemo-h1 vxdemo-h2 vxdemo-c1 vxdemo-c2; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "underlay: a bridge in vxdemo-u, hosts vxdemo-h1 (198.18.0.11) and vxdemo-h2 (198.18.0.12)"
ip netns add vxdemo-u
ip -n vxdemo-u link add br0 type bridge
ip -n vxdemo-u link set br0 up
for i in 1 2; do
    ip netns add vxdemo-h$i
    ip -n vxdemo-u link add h$i type veth peer name eth0 netns vxdemo-h$i
    ip -n vxdemo-u link set h$i master br0 up
    ip -n vxdemo-h$i addr add 198.18.0.1$i/24 dev eth0
    ip -n vxdemo-h$i link set eth0 up
    ip -n vxdemo-h$i link set lo up
    # A real NIC finishes checksums; a veth leaves them to "hardware" that never comes.
    ip netns exec vxdemo-h$i ethtool -K eth0 tx off >/dev/null
done

step "a vxnet daemon on each host (nsenter --net: own network namespace, shared mounts)"
for i in 1 2; do
    nsenter --net=/var/run/netns/vxdemo-h$i "$VXNET" daemon --advertise-addr 198.18.0.1$i \
        --name host$i --data-dir "$WORK/h$i" --socket "$WORK/h$i.sock" >"$WORK/h$i.log" 2>&1 &
done
for i in 1 2; do
    for _ in $(seq 50); do "$VXNET" --socket "$WORK/h$i.sock" network ls >/dev/null 2>&1 && break; sleep 0.1; done
done

step "one cluster: host 2 joins host 1 (Raft, no external store)"
TOKEN=$("$VXNET" --socket "$WORK/h1.sock" cluster token)
run "$VXNET" --socket "$WORK/h2.sock" cluster join 198.18.0.11 --token "$TOKEN"
run "$VXNET" --socket "$WORK/h1.sock" cluster members

step "an overlay network, created once, seen on both hosts"
run "$VXNET" --socket "$WORK/h1.sock" network create --subnet 10.10.0.0/24 demo
run "$VXNET" --socket "$WORK/h2.sock" network ls

step "a container (network namespace) on each host"
ip netns add vxdemo-c1
ip netns add vxdemo-c2
run "$VXNET" --socket "$WORK/h1.sock" network connect demo vxdemo-c1
run "$VXNET" --socket "$WORK/h2.sock" network connect demo vxdemo-c2
run ip -n vxdemo-c1 -br addr show eth0
run ip -n vxdemo-c2 -br addr show eth0

step "ping across hosts, through vxnet's userspace VXLAN"
run ip netns exec vxdemo-c1 ping -c 3 -i 0.2 10.10.0.3
run "$VXNET" --socket "$WORK/h1.sock" fdb demo
run "$VXNET" --socket "$WORK/h1.sock" stats

cleanup
trap - EXIT

step "benchmark: vxnet vs kernel vxlan vs bare underlay (medians of 3 runs)"
run target/release/vxnet-bench --repeat "${VXNET_BENCH_REPEAT:-3}" --duration "${VXNET_BENCH_DURATION:-5}" \
    --json bench-results.json
