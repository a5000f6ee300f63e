#!/usr/bin/env bash
# Mutation testing of rafting-core with cargo-mutants: how many small bugs does each test
# suite notice?
#
#   sim/mutation/run-mutants.sh [sim|unit] [raft|store|all] [-- extra cargo-mutants args]
#
#   sim   (default) the simulator alone is the test: sim/tests/mutation_sim.rs, every
#         regression seed and MUTATION_SEEDS (default 8) seeds of every shipped scenario,
#         stopping at the first violation. Only core, wal and sim are built.
#   unit  core's own unit and integration tests (`cargo test -p rafting-core`).
#
# Results go to $MUTANTS_OUT/<mode>-<area>/mutants.out (default /tmp/rafting-mutants); the
# summary lists (caught, missed, timeout, unviable) are copied to
# sim/mutation/results/<mode>-<area>/ for the report. cargo-mutants writes its lists as it
# goes, so an interrupted run keeps what it finished.
#
# Mutants are built in a copy of the tree (not --in-place), one at a time (two cores), so the
# working tree stays usable during a run; the copy builds into $CARGO_TARGET_DIR (default
# /tmp/rafting-mutants-target), kept between runs so only core and its dependents rebuild.
# Examples:
#   sim/mutation/run-mutants.sh sim raft
#   sim/mutation/run-mutants.sh sim store -- --re 'sessions.rs'
#   MUTANTS_TAG=half0 sim/mutation/run-mutants.sh sim raft -- --shard 0/2 --sharding round-robin
#     (every other mutant; MUTANTS_TAG keeps its results apart from a full run's)
set -euo pipefail

mode=${1:-sim}
area=${2:-all}
shift $(($# < 2 ? $# : 2))
if [[ ${1:-} == "--" ]]; then shift; fi
extra=("$@")

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/rafting-mutants-target}
out_base=${MUTANTS_OUT:-/tmp/rafting-mutants}
# MUTANTS_COMMIT names the commit when the tree is an export (`git archive`) without .git.
commit=${MUTANTS_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

case $area in
raft | store) areas=("$area") ;;
all) areas=(raft store) ;;
*)
    echo "unknown area '$area' (raft, store or all)" >&2
    exit 2
    ;;
esac

# Cargo decides freshness by file times, and cargo-mutants builds in a fresh copy of the tree
# each run: a copy whose files are older than artifacts built from an earlier copy would be
# taken as built. Our own crates are rebuilt from scratch once per run to be sure.
nice -n 19 cargo clean --profile mutants -p rafting-core -p rafting-wal -p rafting-sim

case $mode in
sim)
    # cargo-mutants 27's baseline runs the mutated package's tests, not --test-package's,
    # so the baseline is run here and cargo-mutants skips its own.
    echo "baseline: the simulator pass on the unmutated tree"
    nice -n 19 cargo test --profile mutants -p rafting-sim --test mutation_sim --no-run
    start=$(date +%s)
    nice -n 19 cargo test --profile mutants -p rafting-sim --test mutation_sim -- --ignored
    baseline_s=$(($(date +%s) - start))
    # A mutant that makes the simulator loop is cut off well after a clean pass would end.
    timeout_s=$((baseline_s * 4 > 60 ? baseline_s * 4 : 60))
    echo "baseline took ${baseline_s}s; test timeout ${timeout_s}s"
    mode_args=(--baseline skip --timeout "$timeout_s" --build-timeout 900
        --test-package rafting-sim --cargo-arg=--test=mutation_sim)
    test_args=(-- -- --ignored)
    ;;
unit)
    mode_args=(--test-package rafting-core --build-timeout 900)
    test_args=()
    ;;
*)
    echo "unknown mode '$mode' (sim or unit)" >&2
    exit 2
    ;;
esac

for part in "${areas[@]}"; do
    name="$mode-$part${MUTANTS_TAG:+-$MUTANTS_TAG}"
    out="$out_base/$name"
    mkdir -p "$out"
    echo "== $name at $commit: cargo mutants -f 'core/src/$part/**' (results in $out)"
    status=0
    nice -n 19 cargo mutants --jobs 1 --no-shuffle \
        --file "core/src/$part/**" \
        --output "$out" \
        "${mode_args[@]}" "${extra[@]}" "${test_args[@]}" || status=$?
    # 0: all caught; 2: some missed; 3: some timed out; 4: baseline failed; others: errors.
    results="$root/sim/mutation/results/$name"
    mkdir -p "$results"
    for list in caught missed timeout unviable; do
        sort "$out/mutants.out/$list.txt" >"$results/$list.txt" 2>/dev/null || true
    done
    {
        echo "commit $commit, cargo-mutants exit $status, $(date -u +%FT%TZ)"
        for list in caught missed timeout unviable; do
            printf '%-9s %s\n' "$list" "$(wc -l <"$results/$list.txt")"
        done
    } | tee "$results/summary.txt"
done
