#!/usr/bin/env bash
# Runs SEEDS seeds (default 300) of every shipped scenario in release mode; fails on any
# violation. Meant for CI: about a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${SEEDS:-300}"
cargo build --release -p rafting-server
status=0
for scenario in scenarios/*.toml; do
    [ "$(basename "$scenario")" = regressions.toml ] && continue
    ./target/release/rafting sim run "$scenario" --seeds "$seeds" --jobs 2 || status=1
done
exit "$status"
