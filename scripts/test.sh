#!/usr/bin/env bash
# The whole test suite: unit tests of the sans-IO cores, and the integration tests that run
# real vxnet daemons, TAPs, veths, bridges, iperf3, ping and a kernel vxlan peer in network
# namespaces. Needs root; set VXNET_SKIP_ROOT_TESTS=1 to skip the tests that need it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --workspace --bins
cargo test --workspace -- --test-threads "${VXNET_TEST_THREADS:-2}"
