#!/usr/bin/env bash
# Instructions per span on the user's path (criterion's span/typical_request, built
# through the public Span API), counted by callgrind: exact and repeatable whatever else
# the machine does, unlike a time. Needs valgrind.
#
#   scripts/instructions.sh                 # this tree
#   BASELINE=85cc210 scripts/instructions.sh # and an earlier commit, built in a worktree
#
# N spans (default 20000) are made once with static tag values and once with owned ones;
# only `one_request_span` is counted (--toggle-collect), so start-up and the backend's
# sending at shutdown are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
command -v valgrind >/dev/null || { echo "instructions.sh needs valgrind" >&2; exit 1; }

count() { # binary, static|owned
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --toggle-collect='*one_request_span*' \
    --callgrind-out-file="$out" "$1" "$2" "$N" 2>&1 |
    awk -v n="$N" '/Collected :/ { printf "%.0f", $NF / n }'
  rm -f "$out"
}

measure() { # label, binary
  printf '%s: %s instructions a span with static tag values, %s with owned ones\n' \
    "$1" "$(count "$2" static)" "$(count "$2" owned)"
}

if [ -n "${BASELINE:-}" ]; then
  rev=$(git rev-parse --short "$BASELINE^{commit}")
  tree=target/instructions/tree
  rm -rf "$tree"
  git worktree prune
  git worktree add --detach "$tree" "$rev" >&2
  # The harness may be newer than the baseline: the same one measures both.
  mkdir -p "$tree/crates/trace-client/examples"
  cp crates/trace-client/examples/span_instructions.rs "$tree/crates/trace-client/examples/"
  cargo build --release -p trace-client --example span_instructions \
    --manifest-path "$tree/Cargo.toml" --target-dir target/instructions/target >&2
  cp target/instructions/target/release/examples/span_instructions target/instructions/baseline
  git worktree remove --force "$tree"
  measure "$rev" target/instructions/baseline
fi
cargo build --release -p trace-client --example span_instructions >&2
measure "$(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')" \
  target/release/examples/span_instructions
