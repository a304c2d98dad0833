#!/usr/bin/env bash
# Write-path benchmark: prints figures, asserts nothing (machines are shared and noisy).
#
#   scripts/bench/write_path.sh [SECONDS]     # default 60 s of load at 2 requests in flight
#   VIVACE_BIN=/path/to/vivace scripts/bench/write_path.sh 30   # measure another build
#
# Starts a release vivace on 127.0.0.1 with scripts/bench/blocks.yaml (limits lifted, blocks cut
# and compacted every 10 s) and a fresh data dir; prints idle RSS; sends `vivace gen` as fast as
# acknowledgements come back with 2 requests in flight (600-span requests, a Collector with a
# small queue) for SECONDS, waits until every trace is in a block and compaction is idle, and
# prints spans/s, export latency, server CPU per span split into ingest / cutting / compaction
# (from `vivace_background_cpu_seconds`) and peak RSS; then 15 s at 8 and at 32 in flight for
# latency. Last, a fresh server at Tempo's measured load (75.7k spans/s, DESIGN.md §9) for 40 s
# until its block work is done: CPU per span and peak RSS (VmHWM). Servers are stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
secs=${1:-60}
# VIVACE_BIN: another build to measure (e.g. an older commit's, for a back-to-back comparison).
if [ -n "${VIVACE_BIN:-}" ]; then
  bin=$VIVACE_BIN
else
  cargo build --release --quiet
  bin="$CARGO_TARGET_DIR/release/vivace"
fi
# A fresh server on a fresh data dir, ready: sets pid and data.
start() {
  data=$(mktemp -d /tmp/vivace-write-bench.XXXXXX)
  "$bin" -config.file=scripts/bench/blocks.yaml --data-dir "$data" 2>"$data/log" &
  pid=$!
  for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && break; sleep 0.1; done
}
start
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
sleep 2
metric() { curl -s localhost:3200/metrics | awk -v m="$1" '$1 == m { print $2 }'; }
# Waits until no trace is live or completed but not yet in a block and cutting has been
# idle for 6 s (at most 600 s), then until compaction is between jobs (4 s without compaction
# CPU, at most 120 s); prints how long that took. Block work lags ingest at full rate: reading
# the CPU split at a fixed time after the load counted only the blocks cut by then (a third of
# the data after 45 s at 480k spans/s). Compaction never quite ends on a large run (levels keep
# merging up to Tempo's limits), so it is reported per level: its CPU over the spans it merged.
settle() {
  local t0=$SECONDS
  if ! still 600 2 3 cutting; then
    echo "  NOT settled after 600 s: cutting is still behind"
    return
  fi
  echo "  every trace in a block after $((SECONDS - t0 - 6)) s"
  still 120 1 4 compacting || true
}
# still MAX_S STEP N WHAT: true once `WHAT` printed the same line, starting with "0 ", N times in
# a row at STEP-second intervals; false after MAX_S seconds.
still() {
  local t0=$SECONDS last="" same=0 now
  while (( SECONDS - t0 < $1 )); do
    sleep "$2"
    now=$("$4")
    if [ "${now%% *}" = 0 ] && [ "$now" = "$last" ]; then
      same=$((same + 1))
      if (( same >= $3 )); then return 0; fi
    else
      same=0
    fi
    last=$now
  done
  return 1
}
# Traces live or not yet in a block, and cutting's CPU so far.
cutting() {
  curl -s localhost:3200/metrics | awk '
    /^vivace_live_store_(live_traces|unflushed_bytes)/ { held += $2 }
    /^vivace_background_cpu_seconds.*vivace-flush/ { work = $2 }
    END { printf "%d %s\n", held, work }'
}
compacting() { echo "0 $(metric 'vivace_background_cpu_seconds{task="vivace-compact"}')"; }
# Compaction CPU per span it merged, from the `block written` and `blocks compacted` log lines
# (spans per trace taken from all that was ingested): the cost of one compaction level.
per_level() {
  python3 - "$1" "$2" "$data/log" <<'PY'
import re, sys
spans, compact, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
written = merged = 0
levels = {}
for line in open(log):
    if "block written" in line:
        written += int(re.search(r"traces=(\d+)", line).group(1))
    elif "blocks compacted" in line:
        t = int(re.search(r"input_traces=(\d+)", line).group(1))
        merged += t
        lvl = re.search(r"level=(\d+)", line).group(1)
        levels[lvl] = levels.get(lvl, 0) + 1
merged_spans = merged * spans / max(written, 1)
print(f"compaction: {sum(levels.values())} jobs (by output level {dict(sorted(levels.items()))}), "
      f"{merged_spans / 1e6:.1f}M spans merged, {compact / max(merged_spans, 1) * 1e6:.2f} µs CPU per merged span (one level)")
PY
}
# split SPANS CPU0 LABEL: the server's CPU since CPU0 per span, split into ingest (everything
# not on a background thread), cutting and compaction so far; then compaction per level.
split() {
  local cpu1 flush compact
  cpu1=$(metric process_cpu_seconds)
  flush=$(metric 'vivace_background_cpu_seconds{task="vivace-flush"}')
  compact=$(metric 'vivace_background_cpu_seconds{task="vivace-compact"}')
  python3 - "$1" "$2" "$cpu1" "${flush:-0}" "${compact:-0}" "$3" <<'PY'
import sys
spans, cpu0, cpu1, flush, compact = (float(x) for x in sys.argv[1:6])
us = lambda s: s / max(spans, 1) * 1e6
total = cpu1 - cpu0
print(f"server CPU per span{sys.argv[6]}: total {us(total):.2f} µs = ingest {us(total - flush - compact):.2f}"
      f" + cutting {us(flush):.2f} + compaction so far {us(compact):.2f}")
PY
  per_level "$1" "${compact:-0}"
}
echo "==> idle RSS: $(( $(metric process_resident_memory_bytes) / 1024 / 1024 )) MB"
cpu0=$(metric process_cpu_seconds)
out=$("$bin" gen --duration "${secs}s" --concurrency 2 --batch-spans 600 --pid $pid)
echo "$out" | tail -4
spans=$(echo "$out" | awk '/acknowledged/ { print $2 }')
echo "==> settling: until every trace is in a block and compaction is between jobs"
settle
split "$spans" "$cpu0" ""
echo "==> $(grep -c 'block written' "$data/log") blocks written, $(grep -c 'blocks compacted' "$data/log") compactions"
grep 'blocks compacted' "$data/log" | tail -2 | sed 's/^.*blocks compacted/  compacted:/' || true
for c in 8 32; do
  echo "==> $c in flight, 15 s"
  # A seed per phase: the default one would replay the first phase's trace and span IDs.
  "$bin" gen --duration 15s --concurrency "$c" --batch-spans 600 --seed "$c" --pid $pid | tail -3
done
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$data"
start
echo "==> Tempo's load: 75,700 spans/s for 40 s, then until its block work is done"
cpu0=$(metric process_cpu_seconds)
out=$("$bin" gen --duration 40s --rate 75700 --concurrency 2 --batch-spans 600 --pid $pid)
echo "$out" | tail -2
spans=$(echo "$out" | awk '/acknowledged/ { print $2 }')
settle
split "$spans" "$cpu0" " at Tempo's load"
echo "==> peak RSS at Tempo's load: $(( $(awk '/VmHWM/ { print $2 }' /proc/$pid/status) / 1024 )) MB"
