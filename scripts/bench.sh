#!/usr/bin/env bash
# Regenerates the measured part of BENCHMARKS.md with `ssf bench` (about seven minutes).
#
#   scripts/bench.sh            # build, run, rewrite BENCHMARKS.md between its markers
#   scripts/bench.sh --print    # build, run, print the section instead
#
# Every figure is the median of RUNS runs, made round-robin (one run of each
# configuration per round, so that a slow spell of this shared machine does not fall on
# every run of one configuration). The client runs send to an in-process sink that
# only counts frames or datagrams (--count-only), so they measure the client, and each is
# set against two ceilings measured the same way in the same sitting: --raw (one
# pre-encoded span written in a plain loop, same transport and writer count) and
# --encode-only (a producer's loop on one thread without the client: the span made the
# same way and encoded as the client encodes it).
# Environment: SPANS (spans per stream run, default 2000000; UDP and built-span runs use
# a quarter), RUNS (default 5), OVERLOAD_SECS and IDLE_SECS (default 10), SINK_RATE (the
# slow receiver of the overload run, default 50000 spans/s), BASELINE (an earlier commit,
# or an `ssf` binary built from one: the commit is built in a worktree under
# target/baseline, its reused- and built-span runs join the same rounds, and a
# before/after table is added).
# Needs bash, jq and awk.
set -euo pipefail
cd "$(dirname "$0")/.."

SPANS=${SPANS:-2000000}
RUNS=${RUNS:-5}
OVERLOAD_SECS=${OVERLOAD_SECS:-10}
SINK_RATE=${SINK_RATE:-50000}
IDLE_SECS=${IDLE_SECS:-10}
OUT=BENCHMARKS.md
PRINT=0
[ "${1:-}" = "--print" ] && PRINT=1

command -v jq >/dev/null || { echo "bench.sh needs jq" >&2; exit 1; }

echo "== cargo build --release -p ssf-cli" >&2
cargo build --release -p ssf-cli >&2
SSF=target/release/ssf
BASELINE=${BASELINE:-}
BASELINE_REV=""
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then
  BASELINE_REV=$(git rev-parse --short "$BASELINE^{commit}") ||
    { echo "BASELINE=$BASELINE is neither an ssf binary nor a commit" >&2; exit 1; }
  tree=target/baseline/tree
  rm -rf "$tree"
  git worktree prune
  echo "== building the baseline $BASELINE_REV in $tree" >&2
  git worktree add --detach "$tree" "$BASELINE_REV" >&2
  cargo build --release -p ssf-cli --manifest-path "$tree/Cargo.toml" \
    --target-dir target/baseline/target >&2
  cp target/baseline/target/release/ssf target/baseline/ssf
  git worktree remove --force "$tree"
  BASELINE=target/baseline/ssf
fi
[ -n "$BASELINE" ] && [ -z "$BASELINE_REV" ] && BASELINE_REV="\`$BASELINE\`"
STARTED=$(date +%s)

# Every measured configuration is a job; the jobs run round-robin, RUNS rounds, so
# that a slow spell of the machine falls on one run of many configurations rather than
# on every run of one.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
declare -A JOB_ARGS JOB_BIN
JOBS=()
job() { # key, ssf bench args...
  local key=$1; shift
  JOBS+=("$key")
  JOB_ARGS[$key]="$*"
  JOB_BIN[$key]=$SSF
}
# The same run made by the baseline binary, under the key "base-<key>".
baseline_job() { # key
  JOBS+=("base-$1")
  JOB_ARGS[base-$1]=${JOB_ARGS[$1]}
  JOB_BIN[base-$1]=$BASELINE
}
run_jobs() {
  for round in $(seq "$RUNS"); do
    for key in "${JOBS[@]}"; do
      echo "== round $round/$RUNS: ssf bench ${JOB_ARGS[$key]}" >&2
      # shellcheck disable=SC2086
      "${JOB_BIN[$key]}" bench --json ${JOB_ARGS[$key]} >>"$TMP/$key.jsonl"
    done
  done
}
# key -> the median run's JSON report (by spans_per_sec)
median() {
  jq -s 'sort_by(.spans_per_sec) | .[(length / 2 | floor)]' "$TMP/$1.jsonl"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "-" }'; }
# 1234567.8 -> 1 234 568
rate() { printf '%.0f' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\| \)/\1 \2\3/;ta'; }
sps() { jq .spans_per_sec <<<"$1"; }
ds() { jq -r '"\(.delivered) / \(.sent)"' <<<"$1"; }

# Spans per run: streams are fast, UDP costs the kernel microseconds per datagram, and
# building every span costs the producers most of their time.
spans_for() { # transport mode
  if [ "$1" = udp ] || [ "$2" = built ]; then echo $((SPANS / 4));
  elif [ "$2" != reused ]; then echo $((SPANS / 2)); else echo "$SPANS"; fi
}
# mode -> how the producers make their spans
mode_args() {
  case "$1" in
    span_api) echo "--span-api" ;;
    span_api_owned) echo "--span-api --owned-tags" ;;
    reused) echo "--reuse" ;;
    built) echo "" ;;
  esac
}
MODES="span_api span_api_owned reused built"
# mode -> its name in the tables
mode_label() {
  case "$1" in
    span_api) echo "Span API" ;;
    span_api_owned) echo "Span API, owned tag values" ;;
    *) echo "$1" ;;
  esac
}

declare -A RAW_ARGS
for mode in $MODES; do
  # shellcheck disable=SC2046
  job "encode-$mode" --encode-only --spans "$SPANS" $(mode_args "$mode")
done
for t in unix tcp udp; do
  for p in 1 2; do
    n=$((SPANS * 5))
    [ "$t" = udp ] && n=$((SPANS / 2))
    RAW_ARGS[$t$p]="--raw --in-process $t --count-only --producers $p --spans $n"
    job "raw-$t$p" ${RAW_ARGS[$t$p]}
  done
done
CLIENT_KEYS=()
for mode in $MODES; do
  for t in unix tcp udp; do
    for b in no yes; do
      # UDP has no write buffer: the client ignores --buffered there.
      [ "$t" = udp ] && [ "$b" = yes ] && continue
      # Owned tag values: the buffered unix stream only.
      [ "$mode" = span_api_owned ] && { [ "$t" != unix ] || [ "$b" = no ]; } && continue
      for p in 1 2; do
        args="--in-process $t --count-only --producers $p --spans $(spans_for "$t" "$mode")"
        [ "$b" = yes ] && args+=" --buffered"
        m=$(mode_args "$mode")
        [ -n "$m" ] && args+=" $m"
        job "client-$mode-$t-$b-$p" $args
        CLIENT_KEYS+=("$mode $t $b $p")
      done
    done
  done
done

# Settings beside the defaults: where spans are encoded, veneur's queue capacity, one
# backend, a large queue. One producer; "of raw" is against one raw writer.
Q=$((SPANS / 4))
SETTING_KEYS=()
setting() { # label, transport, args...
  local label=$1 t=$2; shift 2
  local key="setting-${#SETTING_KEYS[@]}"
  SETTING_KEYS+=("$key")
  SETTING_LABEL[$key]=$label
  SETTING_T[$key]=$t
  job "$key" --in-process "$t" --count-only "$@"
}
declare -A SETTING_LABEL SETTING_T
setting "built spans, encoded when recorded (default), buffered" unix --buffered --spans "$Q"
setting "built spans, encoded by the backends, buffered" unix --buffered --spans "$Q" --encode-in-backend
setting "reused span, queue of 64 (veneur's default), buffered" unix --buffered --spans "$SPANS" --reuse --capacity 64
setting "reused span, 1 backend, buffered" unix --buffered --spans "$SPANS" --reuse --backends 1
setting "reused span, queue of 65 536, buffered" unix --buffered --spans "$SPANS" --reuse --capacity 65536
setting "reused span, 1 backend (one socket, as one raw writer)" udp --spans "$Q" --reuse --backends 1
setting "built spans, encoded by the backends" udp --spans "$Q" --encode-in-backend

# gRPC has no counting receiver (its receiver decodes every call): it runs here only,
# with fewer spans (one unary call per span costs far more than a frame), at the
# default 8 backends and at 2 (one HTTP/2 connection per core of a 2-CPU machine).
DECODING_KEYS="unix tcp udp grpc grpc-2"
for t in $DECODING_KEYS; do
  case "$t" in
    grpc) args="--in-process grpc --spans $((SPANS / 20)) --reuse" ;;
    grpc-2) args="--in-process grpc --spans $((SPANS / 20)) --reuse --backends 2" ;;
    *) args="--in-process $t --spans $((SPANS / 4)) --reuse" ;;
  esac
  [ "$t" = unix ] || [ "$t" = tcp ] && args+=" --buffered"
  job "decoding-$t" $args
done

# gRPC's two ways to have spans on their way at once: calls in flight on one HTTP/2
# connection, or connections (backends). The first three keep 64 in flight in all.
GRPC_SHAPES="1x64 8x8 64x1 2x64 8x64"
for shape in $GRPC_SHAPES; do
  b=${shape%x*}; c=${shape#*x}
  job "grpc-shape-$shape" --in-process grpc --spans $((SPANS / 20)) --reuse --backends "$b" --grpc-calls "$c"
done

# A receiver that takes SINK_RATE spans/s: what the client sustains to it.
SLOW_ARGS=(--in-process unix --count-only --sink-rate "$SINK_RATE")
job sustained "${SLOW_ARGS[@]}" --spans "$SINK_RATE"

# Before/after: the runs whose flags an earlier `ssf` also has (reused and built spans,
# and spans built through the Span API where it has `--span-api`; one and two
# producers, every transport, buffered where there is a buffer).
BASE_KEYS=()
BASE_MODES=""
if [ -n "$BASELINE" ]; then
  BASE_MODES="reused built"
  "$BASELINE" bench --help 2>&1 | grep -q -- --span-api && BASE_MODES="span_api span_api_owned $BASE_MODES"
  for mode in $BASE_MODES; do baseline_job "encode-$mode"; done
  for mode in $BASE_MODES; do
    for t in unix tcp udp; do
      b=yes
      [ "$t" = udp ] && b=no
      # Owned tag values: the buffered unix stream only, as above.
      [ "$mode" = span_api_owned ] && [ "$t" != unix ] && continue
      for p in 1 2; do
        baseline_job "client-$mode-$t-$b-$p"
        BASE_KEYS+=("$mode $t $b $p")
      done
    done
  done
fi

run_jobs

declare -A ENCODE RAW CLIENT
for mode in $MODES; do ENCODE[$mode]=$(median "encode-$mode"); done
for t in unix tcp udp; do for p in 1 2; do RAW[$t$p]=$(median "raw-$t$p"); done; done

ROWS=""
for k in "${CLIENT_KEYS[@]}"; do
  read -r mode t b p <<<"$k"
  key="client-$mode-$t-$b-$p"
  r=$(median "$key")
  CLIENT[$mode$t$b$p]=$r
  ROWS+="| $mode | $t | $b | $p | $(rate "$(sps "$r")") | $(pct "$(sps "$r")" "$(sps "${RAW[$t$p]}")") "
  ROWS+="| $(pct "$(sps "$r")" "$(sps "${ENCODE[$mode]}")") "
  ROWS+="| $(jq .cpu_s <<<"$r") | $(mib "$(jq .peak_rss_bytes <<<"$r")") "
  ROWS+="| $(ds "$r") | \`ssf bench ${JOB_ARGS[$key]}\` |"$'\n'
done

RAW_ROWS=""
for t in unix tcp udp; do
  for p in 1 2; do
    r=${RAW[$t$p]}
    RAW_ROWS+="| $t | $p | $(rate "$(sps "$r")") | $(jq .cpu_s <<<"$r") | $(ds "$r") "
    RAW_ROWS+="| \`ssf bench ${RAW_ARGS[$t$p]}\` |"$'\n'
  done
done

SETTINGS=""
for key in "${SETTING_KEYS[@]}"; do
  r=$(median "$key")
  t=${SETTING_T[$key]}
  SETTINGS+="| ${SETTING_LABEL[$key]} | $t | $(rate "$(sps "$r")") | $(pct "$(sps "$r")" "$(sps "${RAW[${t}1]}")") "
  SETTINGS+="| $(jq .cpu_s <<<"$r") | $(mib "$(jq .peak_rss_bytes <<<"$r")") "
  SETTINGS+="| $(ds "$r") | \`ssf bench ${JOB_ARGS[$key]}\` |"$'\n'
done

DECODING=""
for t in $DECODING_KEYS; do
  r=$(median "decoding-$t")
  DECODING+="| $t | $(rate "$(sps "$r")") | $(jq .cpu_s <<<"$r") "
  DECODING+="| $(mib "$(jq .peak_rss_bytes <<<"$r")") | $(ds "$r") "
  DECODING+="| \`ssf bench ${JOB_ARGS[decoding-$t]}\` |"$'\n'
done

GRPC_ROWS=""
for shape in $GRPC_SHAPES; do
  r=$(median "grpc-shape-$shape")
  GRPC_ROWS+="| ${shape%x*} | ${shape#*x} | $(( ${shape%x*} * ${shape#*x} )) | $(rate "$(sps "$r")") "
  GRPC_ROWS+="| $(jq .cpu_s <<<"$r") | $(mib "$(jq .peak_rss_bytes <<<"$r")") | $(ds "$r") "
  GRPC_ROWS+="| \`ssf bench ${JOB_ARGS[grpc-shape-$shape]}\` |"$'\n'
done

# The producers offer ten times what the client sustains to the slow receiver, without
# waiting.
SLOW=$(median sustained)
SUSTAINED=$(sps "$SLOW")
OVER_RATE=$(awk -v s="$SUSTAINED" 'BEGIN { printf "%.0f", 10 * s }')
OVER_ARGS=("${SLOW_ARGS[@]}" --no-wait --producers 2 --rate "$OVER_RATE" --duration "$OVERLOAD_SECS")
echo "== overload ${OVER_ARGS[*]}" >&2
OVER=$("$SSF" bench --json "${OVER_ARGS[@]}")

IDLE_ROWS=""
for t in unix tcp udp grpc; do
  echo "== idle $t" >&2
  r=$("$SSF" bench --json --idle "$IDLE_SECS" --in-process "$t")
  IDLE_ROWS+="| $t | $(jq .idle_s <<<"$r") | $(jq .idle_cpu_s <<<"$r") | $(jq .accepted <<<"$r") "
  IDLE_ROWS+="| $(jq .refused <<<"$r") | $(jq .dropped.total <<<"$r") | $(jq .max_tick_late_ms <<<"$r") "
  IDLE_ROWS+="| \`ssf bench --idle $IDLE_SECS --in-process $t\` |"$'\n'
done

BEFORE_AFTER=""
if [ -n "$BASELINE" ]; then
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  BEFORE_AFTER+=$'\n'"**Before and after** (the same runs, in the same rounds, by \`ssf\` built from"
  BEFORE_AFTER+=" an earlier commit, $BASELINE_REV; medians of $RUNS, spans/s):"$'\n\n'
  BEFORE_AFTER+="| run | before | after | after / before | command |"$'\n'
  BEFORE_AFTER+="|---|---|---|---|---|"$'\n'
  for mode in $BASE_MODES; do
    a=$(sps "$(median "encode-$mode")"); o=$(sps "$(median "base-encode-$mode")")
    BEFORE_AFTER+="| encode-only, $(mode_label "$mode") | $(rate "$o") | $(rate "$a") | $(ratio "$a" "$o") "
    BEFORE_AFTER+="| \`ssf bench ${JOB_ARGS[encode-$mode]}\` |"$'\n'
  done
  for k in "${BASE_KEYS[@]}"; do
    read -r mode t b p <<<"$k"
    key="client-$mode-$t-$b-$p"
    a=$(sps "$(median "$key")"); o=$(sps "$(median "base-$key")")
    label="$(mode_label "$mode"), $t"
    [ "$b" = yes ] && label+=", buffered"
    label+=", $p producer"
    [ "$p" = 2 ] && label+="s"
    BEFORE_AFTER+="| $label | $(rate "$o") | $(rate "$a") | $(ratio "$a" "$o") "
    BEFORE_AFTER+="| \`ssf bench ${JOB_ARGS[$key]}\` |"$'\n'
  done
fi

# The goals, read off the runs above.
API_1=${CLIENT[span_apiunixyes1]}
API_2=${CLIENT[span_apiunixyes2]}
API_OWNED=${CLIENT[span_api_ownedunixyes1]}
API_SCALE=$(awk -v a="$(sps "$API_2")" -v b="$(sps "$API_1")" 'BEGIN { printf "%.2f", a / b }')
UNIX_B=${CLIENT[reusedunixyes1]}
TCP_B=${CLIENT[reusedtcpyes1]}
UDP_1=${CLIENT[reusedudpno1]}
ELAPSED=$(( $(date +%s) - STARTED ))

SECTION=$(cat <<EOF
<!-- bench:begin (generated by scripts/bench.sh; edit the script, not this section) -->
Measured on $(date -u +%Y-%m-%d) at commit \`$(git rev-parse --short HEAD)\`:
$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),
$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) of memory, Linux $(uname -r),
$(rustc --version). Each figure is the median of $RUNS runs; the configurations ran
round-robin, one run of each per round; the script took $ELAPSED s.

**Against the goals** (one producer, client defaults):

| goal | measured |
|---|---|
| **Span API** (a span built per request through \`Span\`, static strings), unix stream, buffered: at least 3 M spans/s | $(rate "$(sps "$API_1")") spans/s, $(pct "$(sps "$API_1")" "$(sps "${ENCODE[span_api]}")") of its encode-only rate ($(rate "$(sps "${ENCODE[span_api]}")") spans/s on one thread) |
| Span API with owned (\`String\`) tag values: at least 2.5 M spans/s | $(rate "$(sps "$API_OWNED")") spans/s |
| Span API, two producers: at least 1.4 × one | $(rate "$(sps "$API_2")") spans/s, $API_SCALE × |
| reused span (\`try_record_ref\`), unix stream, buffered: at least 3 M spans/s, beside the encode-only rate | $(rate "$(sps "$UNIX_B")") spans/s, $(pct "$(sps "$UNIX_B")" "$(sps "${ENCODE[reused]}")") of the encode-only rate ($(rate "$(sps "${ENCODE[reused]}")") spans/s on one thread) |
| UDP: at least 85 % of the \`sendmmsg\` ceiling, no receiver-side loss | $(rate "$(sps "$UDP_1")") spans/s, $(pct "$(sps "$UDP_1")" "$(sps "${RAW[udp1]}")") of one raw writer ($(rate "$(sps "${RAW[udp1]}")")), $(pct "$(sps "$UDP_1")" "$(sps "${RAW[udp2]}")") of two ($(rate "$(sps "${RAW[udp2]}")")); delivered / sent $(ds "$UDP_1") |
| TCP stream within 20 % of unix (buffered) | $(rate "$(sps "$TCP_B")") spans/s, $(pct "$(sps "$TCP_B")" "$(sps "$UNIX_B")") of unix |
${BEFORE_AFTER}
**Encode-only** (\`ssf bench --encode-only\`: one thread makes each span as the
producers do and encodes it as the client does, with no client):
Span API $(rate "$(sps "${ENCODE[span_api]}")") spans/s
(\`ssf bench --encode-only --spans $SPANS --span-api\`), with owned tag values
$(rate "$(sps "${ENCODE[span_api_owned]}")") spans/s (\`--span-api --owned-tags\`), reused span
$(rate "$(sps "${ENCODE[reused]}")") spans/s
(\`ssf bench --encode-only --spans $SPANS --reuse\`), built spans
$(rate "$(sps "${ENCODE[built]}")") spans/s (\`ssf bench --encode-only --spans $SPANS\`).

**The client** (client defaults: a 1024-span queue, 8 backends, spans encoded when
recorded; producers build each span through the public Span API (*span_api*: a child of
the producer's request span, five \`set_tag\`, a counter and a timing sample,
\`finish_with\`; static strings, nothing allocated; *span_api_owned*: the five tag values
are \`String\`s), or record with \`try_record_ref\` (a *reused* span: the same span with
fresh IDs and timestamps each time, nothing allocated) or \`try_record\` (a span *built*
from a template each time, 20 allocations, freed by the recording task); on a full
queue they yield and retry, up to 4 times, then wait; the in-process sink only counts
frames or datagrams; "of raw" compares with as many raw writers as producers, "of
encode-only" with the encode-only rate of the same kind of span):

| span | transport | buffered | producers | spans/s | of raw | of encode-only | cpu s | peak RSS MiB | delivered / sent | command |
|---|---|---|---|---|---|---|---|---|---|---|
${ROWS}
**Raw ceilings** (one pre-encoded span written in a plain loop by blocking writer
threads, one connection each: 64 KiB writes of repeated frames on streams, one datagram
per span in \`sendmmsg\` batches of 64 on UDP):

| transport | writers | spans/s | cpu s | delivered / sent | command |
|---|---|---|---|---|---|
${RAW_ROWS}
**Other settings** (one producer; "of raw" against one raw writer of the transport):

| setting | transport | spans/s | of raw | cpu s | peak RSS MiB | delivered / sent | command |
|---|---|---|---|---|---|---|---|
${SETTINGS}
**With the decoding receiver** (\`ssf-receiver\` decodes and normalises every span in the
same process, so it competes with the client for the CPUs). gRPC is one unary call per
span, and its time goes to HTTP/2 on both sides of the loopback, not to the SSF encoding
(the same bare protobuf UDP sends). A profile of the default gRPC run
(\`perf record --call-graph dwarf -F 499 ssf bench --in-process grpc --spans 30000 --reuse\`,
taken on 2026-12-04, inclusive shares of all samples) shows 35 % in system calls (16 % in
TCP sends of small HTTP/2 writes, 12 % in futex wake-ups between the runtime's threads),
25 % in the client's HTTP/2 connection task, 22 % in the receiver's connection task and
18 % in its per-call stream tasks, 16 % in the client's calls (tonic's unary call,
request and trailers), and 18 % in malloc and free spread over all of them (hyper and h2
allocate per stream); the receiver's per-connection message budget is 0.6 %.
\`grpc-2\` is 2 backends (2 HTTP/2 connections) instead of 8:

| transport | spans/s | cpu s | peak RSS MiB | delivered / sent | command |
|---|---|---|---|---|---|
${DECODING}
**gRPC: connections or calls in flight** (the same decoding receiver; *backends* is the
number of HTTP/2 connections, *calls* the \`SendSpan\` calls each keeps in flight,
\`--grpc-calls\`, the client's \`grpc_calls_in_flight\`; the first three rows have 64
spans on their way at once):

| backends | calls per backend | in flight | spans/s | cpu s | peak RSS MiB | delivered / sent | command |
|---|---|---|---|---|---|---|---|
${GRPC_ROWS}
**Overload**: a unix receiver taking $(rate "$SINK_RATE") spans/s (the client sustains
$(rate "$SUSTAINED") spans/s to it: \`ssf bench ${SLOW_ARGS[*]} --spans $SINK_RATE\`), and two
producers offering ten times that without waiting
(\`ssf bench ${OVER_ARGS[*]}\`):
offered $(jq .attempted <<<"$OVER") spans in $(jq .elapsed_s <<<"$OVER") s, accepted
$(jq .accepted <<<"$OVER"), refused $(jq .refused <<<"$OVER") (counted), sent
$(jq .sent <<<"$OVER") ($(rate "$(sps "$OVER")") spans/s), dropped
$(jq .dropped.total <<<"$OVER"); peak RSS $(mib "$(jq .peak_rss_bytes <<<"$OVER")") MiB
(the sustained run: $(mib "$(jq .peak_rss_bytes <<<"$SLOW")") MiB); a 10 ms ticker on the
same runtime was at most $(jq .max_tick_late_ms <<<"$OVER") ms late.

**Idle with the receiver absent** (the client is offered 100 000 spans, refuses what does
not fit, drops what it accepted, then is left alone; CPU time used while left alone):

| transport | idle s | cpu s while idle | accepted | refused | dropped | ticker late ms | command |
|---|---|---|---|---|---|---|---|
${IDLE_ROWS}<!-- bench:end -->
EOF
)

if [ "$PRINT" = 1 ] || [ ! -f "$OUT" ]; then
  printf '%s\n' "$SECTION"
  exit 0
fi
# Replace the generated section of BENCHMARKS.md, keeping the rest.
SECTION="$SECTION" awk '
  /<!-- bench:begin/ { print ENVIRON["SECTION"]; skip = 1; next }
  /<!-- bench:end -->/ { skip = 0; next }
  !skip { print }
' "$OUT" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "rewrote the measured section of $OUT" >&2
