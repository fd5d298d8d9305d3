#!/usr/bin/env bash
# The whole test suite: unit tests of the sans-IO cores, and the integration tests that run
# real vxnet daemons, TAPs, veths, bridges, iperf3, ping and a kernel vxlan peer in network
# namespaces — then the dataplane's integration tests again with the TAP offloads, coalescing
# and UDP GSO switched off (VXNET_NO_OFFLOADS=1); then the dataplane and cluster tests once more
# with every daemon started with --kernel 3.10 under a seccomp filter that makes the kernel answer
# like Linux 3.10 (VXNET_LAB_KERNEL=3.10, README "Kernel features"). Every fuzz target runs for a
# few seconds after the first pass (scripts/fuzz.sh, fuzz/README.md), so none of them rots.
# Formatting and lints are checked first: unformatted code or a clippy warning fails the run.
# Needs root; set VXNET_SKIP_ROOT_TESTS=1 to skip the tests that need it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "== cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
threads=${VXNET_TEST_THREADS:-2}
cargo test --workspace -- --test-threads "$threads"
echo "== fuzz targets, 10 s each (scripts/fuzz.sh)"
scripts/fuzz.sh --seconds 10
echo "== dataplane tests again without offloads (VXNET_NO_OFFLOADS=1)"
VXNET_NO_OFFLOADS=1 cargo test -p vxnet-tests --test overlay --test interop --test junk \
    --test restart --test encrypted -- --test-threads "$threads"
echo "== dataplane and cluster tests again as on Linux 3.10 (VXNET_LAB_KERNEL=3.10)"
VXNET_LAB_KERNEL=3.10 cargo test -p vxnet-tests --test overlay --test interop --test junk \
    --test restart --test cluster_network --test cluster_faults -- --test-threads "$threads"
