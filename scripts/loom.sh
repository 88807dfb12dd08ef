#!/usr/bin/env bash
# Runs the loom models of trace-client's queue (crates/trace-client/src/queue/loom.rs):
# every interleaving of a few threads through the ring and the wake protocol.
#
#   scripts/loom.sh                 # all the models
#   scripts/loom.sh ring_           # those whose name contains `ring_`
#
# The cfg is the crate's own (`ssf_loom`): tokio reads `cfg(loom)` as its own. A target
# directory of their own keeps the normal builds' artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg ssf_loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p trace-client --release --lib -- --test-threads=1 "queue::loom::${1:-}"
