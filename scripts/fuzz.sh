#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (see fuzz/README.md), one after the other, each for a fixed
# time, and prints how many inputs each executed. Exits non-zero if any target found a crash;
# its reproducer is then under fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...] [-- LIBFUZZER_ARGS...]
#
# N defaults to 30; no TARGET means all of them. Arguments after `--` go to every libFuzzer
# run (e.g. `-runs=1000000` to stop at a number of executions instead).
#
# Choices made here:
# - cargo-fuzz wants nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# - `--sanitizer none`: the code under test (wire views, forwarding core, offloads, prost
#   decoding, the state machine) has no `unsafe`, so AddressSanitizer would find nothing the
#   Rust bounds checks do not already turn into a panic, while it slows every execution about
#   twofold and rebuilds the whole dependency tree (tokio, raft, raft-engine...) instrumented.
#   What the fuzzers look for here are panics and broken invariants.
# - `-a` (debug assertions and overflow checks): an arithmetic overflow on input is a bug
#   even where release builds would wrap silently.
# - New inputs a run finds go to a scratch directory that is deleted afterwards; the
#   committed seeds in fuzz/corpus/<target>/ are only read. To keep a run's growth, pass
#   the corpus directory to `cargo fuzz run` yourself.
# - One libFuzzer process per target, targets one at a time: CI machines have two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
targets=()
extra=()
while (($# > 0)); do
    case "$1" in
    --seconds)
        seconds="${2:?--seconds needs a number}"
        shift 2
        ;;
    --)
        shift
        extra=("$@")
        break
        ;;
    -h | --help)
        sed -n '2,10p' "$0"
        exit 0
        ;;
    *)
        targets+=("$1")
        shift
        ;;
    esac
done

# The longest input each target is given: what its input format needs, no more (longer
# inputs only slow the run down).
declare -A max_len=(
    [wire_views]=2048
    [forward]=8192
    [offload]=8192
    [proto_decode]=4096
    [state_apply]=1024
)
if ((${#targets[@]} == 0)); then
    targets=(wire_views forward offload proto_decode state_apply)
fi
for t in "${targets[@]}"; do
    if [[ -z "${max_len[$t]:-}" ]]; then
        echo "fuzz.sh: unknown target $t (known: ${!max_len[*]})" >&2
        exit 2
    fi
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# The same flags for the build and every run, so that a run does not rebuild.
build_flags=(--sanitizer none -O -a)
(cd fuzz && cargo fuzz build "${build_flags[@]}")

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    echo "== $t: ${seconds}s, -max_len=${max_len[$t]}"
    status=0
    (cd fuzz && cargo fuzz run "${build_flags[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_len="${max_len[$t]}" -max_total_time="$seconds" -print_final_stats=1 \
        "${extra[@]}") >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if ((status != 0)); then
        tail -n 40 "$log" >&2
        failed+=("$t")
        summary+=("$t: FAILED (exit $status) after ${runs:-?} executions")
    else
        summary+=("$t: ${runs:-?} executions in ${seconds}s")
    fi
    echo "${summary[-1]}"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
    echo "fuzz.sh: crashes in: ${failed[*]} (reproducers under fuzz/artifacts/)" >&2
    exit 1
fi
