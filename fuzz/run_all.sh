#!/usr/bin/env bash
# The long run: every target in turn, one libFuzzer process (one core, no -jobs), for SECONDS each (default 55),
# under a memory limit (a decoder must not allocate more than its input implies), going on
# after a crash (-fork=1 -ignore_crashes=1: crashes are counted and their inputs kept in
# artifacts/). Prints one line per target: runs, seconds, coverage, OOMs/timeouts/crashes and
# the first panic message. Needs nightly and cargo-fuzz.
#   fuzz/run_all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-55}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=4096 \
        -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 >"logs/$t.log" 2>&1
    rc=$?
    # Fork mode: one worker process at a time, restarted after a crash; the parent's status
    # lines read "#RUNS: cov: C ft: F corp: N exec/s E oom/timeout/crash: O/T/C time: Ss ...".
    last=$(grep -E '^#[0-9]+: cov:' "logs/$t.log" | tail -1)
    runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    otc=$(grep -oE 'oom/timeout/crash: [0-9/]+' <<<"$last" | grep -oE '[0-9/]+$')
    first=$(grep -m1 -A1 -E 'panicked at' "logs/$t.log" | tail -1)
    echo "$t runs=${runs:-?} secs=$secs cov=${cov:-?} oom/timeout/crash=${otc:-?} rc=$rc ${first:+first: $first}"
done
