#!/usr/bin/env bash
# Runs the loom models of trace-client's queue (crates/trace-client/src/queue/loom.rs):
# the ring and the wake protocol, with every interleaving of a few threads within the
# models' preemption bounds. Release mode; a couple of minutes on two cores.
#
#   scripts/loom.sh                 # every model
#   scripts/loom.sh wake_           # the models whose name contains `wake_`
#
# The cfg is `ssf_loom`, not `loom` (tokio reads `cfg(loom)` as its own). Loom's own
# variables apply: LOOM_MAX_PREEMPTIONS (overrides each model's bound), LOOM_LOG,
# LOOM_LOCATION, LOOM_CHECKPOINT_FILE. A separate target dir keeps the cfg's builds
# from invalidating the normal ones.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="${RUSTFLAGS:-} --cfg ssf_loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
filter="queue::loom::${1:-}"

time cargo test -p trace-client --release --lib -- "$filter"
