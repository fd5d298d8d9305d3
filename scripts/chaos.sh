#!/usr/bin/env bash
# The chaos suite, as many runs as asked: concurrent create/connect/disconnect/rm against a 3-
# and/or 5-host cluster while daemons are killed -9, paused past the election timeout and cut
# off the underlay one way or both ways; then the history check (tests/src/chaos.rs).
#
#   scripts/chaos.sh --runs N --seed S [--hosts 3|5|both] [--secs OP_PHASE_SECONDS]
#
# Run i uses seed S+i (on each lab size asked for). One summary line per run, then a total:
# runs, ops by outcome, faults injected by kind, findings. Each run's history, faults and
# findings are in $TMPDIR/vxnet-chaos-s<SEED>-h<HOSTS>.txt (with daemon logs when it found
# something). Exits non-zero on any finding, or on a run that could not run. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
seed=$((0x5eed0007))
hosts=both
secs=
usage() { echo "usage: $0 --runs N --seed S [--hosts 3|5|both] [--secs N]" >&2; exit 2; }
while (($#)); do
    case "$1" in
        --runs) runs=${2:?}; shift 2 ;;
        --seed) seed=${2:?}; shift 2 ;;
        --hosts) hosts=${2:?}; shift 2 ;;
        --secs) secs=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $runs =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] || usage
case "$hosts" in 3) sizes=(3) ;; 5) sizes=(5) ;; both) sizes=(3 5) ;; *) usage ;; esac

cargo build --workspace --bins
# Build the test binary once, and copy it and the daemon aside: every run then tests the same
# build, whatever is rebuilt in the working tree meanwhile.
work=$(mktemp -d -t vxnet-chaos-XXXXXX)
trap 'rm -rf "$work"' EXIT
test_bin=$(cargo test -p vxnet-tests --test chaos --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep '/chaos-' | tail -1)
[[ -x $test_bin ]] || { echo "chaos: cannot find the chaos test binary" >&2; exit 1; }
cp "$test_bin" "$work/chaos-test"
cp target/debug/vxnet "$work/vxnet"
export VXNET_BIN=$work/vxnet

log=$work/run.log
summaries=$work/summaries
: >"$summaries"
failed_runs=()
start=$(date +%s)
for ((i = 0; i < runs; i++)); do
    s=$((seed + i))
    for n in "${sizes[@]}"; do
        echo "== run $((i + 1))/$runs seed=$s hosts=$n"
        if ! env VXNET_CHAOS_SEED=$s VXNET_CHAOS_RUNS=1 VXNET_CHAOS_HOSTS=$n ${secs:+VXNET_CHAOS_SECS=$secs} \
            "$work/chaos-test" "chaos_on_${n}_hosts" --exact --nocapture --test-threads 1 \
            >"$log" 2>&1; then
            failed_runs+=("seed=$s hosts=$n")
        fi
        line=$(grep '^CHAOS-SUMMARY' "$log" | tail -1 || true)
        if [[ -z $line ]]; then
            echo "   no summary (the run did not complete); output:"
            tail -30 "$log" | sed 's/^/   /'
        else
            echo "   $line"
            echo "$line" >>"$summaries"
        fi
        grep -E '^  - ' "$log" | head -20 | sed 's/^/   /' || true
    done
done
elapsed=$(($(date +%s) - start))

echo "== total ($((elapsed / 60)) min $((elapsed % 60)) s)"
awk -v failed="${#failed_runs[@]}" '
    {
        for (i = 2; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] != "seed" && kv[1] != "hosts" && kv[1] != "report" && kv[1] != "secs") sum[kv[1]] += kv[2]
        }
        runs++
        by_hosts[$3]++
    }
    END {
        printf "runs=%d (%s) failed_runs=%d ops=%d ok=%d refused=%d indeterminate=%d\n",
            runs, (by_hosts["hosts=3"] + 0) " on 3 hosts, " (by_hosts["hosts=5"] + 0) " on 5 hosts",
            failed, sum["ops"], sum["ok"], sum["refused"], sum["indeterminate"]
        printf "faults=%d kill=%d pause=%d cut_in=%d cut_out=%d cut_both=%d pings=%d findings=%d\n",
            sum["kill"] + sum["pause"] + sum["cut_in"] + sum["cut_out"] + sum["cut_both"],
            sum["kill"], sum["pause"], sum["cut_in"], sum["cut_out"], sum["cut_both"],
            sum["pings"], sum["findings"]
    }' "$summaries"
if ((${#failed_runs[@]})); then
    echo "failed: ${failed_runs[*]} (replay: VXNET_CHAOS_SEED=S VXNET_CHAOS_HOSTS=N cargo test -p vxnet-tests --test chaos -- --nocapture)"
    exit 1
fi
