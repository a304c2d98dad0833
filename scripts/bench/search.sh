#!/usr/bin/env bash
# Search benchmark: prints figures, asserts nothing (machines are shared and noisy).
#
#   scripts/bench/search.sh [SPANS]        # default 5,000,000 spans loaded into blocks
#
# Starts a release vivace on 127.0.0.1 (default ports) with scripts/bench/search.yaml and a fresh
# data dir, sends one needle span (an attribute value nothing else has), loads SPANS spans with
# `vivace gen`, waits until they are in blocks, adds a few
# seconds of live data, then runs scripts/bench/search_bench.py: per query the cold and warm
# latency, spans and bytes inspected, spans/s and bytes/s; tags, tag values, trace by ID and
# ack → searchable; TraceQL metrics (1 h at 1 m: rate, rate by service, quantiles by name,
# errors by route) with spans per CPU-second. VIVACE_BENCH_ONLY=metrics runs only those.
# The server is stopped by PID at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
spans=${1:-5000000}
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/vivace"
data=$(mktemp -d /tmp/vivace-search-bench.XXXXXX)
"$bin" -config.file=scripts/bench/search.yaml --data-dir "$data" 2>"$data/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && break; sleep 0.1; done
# The needle: one span whose attribute value nothing else has, sent before the load so it ends
# up in a block with the rest.
needle="needle-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
now_ns=$(date +%s%N)
curl -sf -X POST localhost:4318/v1/traces -H 'Content-Type: application/json' -d "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"frontend\"}}]},\"scopeSpans\":[{\"spans\":[{\"traceId\":\"$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')\",\"spanId\":\"$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')\",\"name\":\"GET /needle\",\"startTimeUnixNano\":\"$now_ns\",\"endTimeUnixNano\":\"$((now_ns + 1000000))\",\"attributes\":[{\"key\":\"bench.needle\",\"value\":{\"stringValue\":\"$needle\"}}]}]}]}]}" >/dev/null
export VIVACE_BENCH_NEEDLE="$needle"
# gen sends ~200k spans/s here; run long enough for SPANS.
secs=$(( spans / 150000 + 1 ))
echo "==> loading ~$spans spans ($secs s of vivace gen)"
"$bin" gen --duration "${secs}s" --rate $(( spans / secs )) --pid $pid | tail -3
echo "==> waiting for blocks (max_block_duration 30s)"
sleep 40
# Another seed: the default one would replay the first spans of the load (the same trace and
# span IDs: deduplicated, not new live data).
"$bin" gen --duration 5s --rate 20000 --seed 2 | tail -1
VIVACE_BENCH_PID=$pid python3 scripts/bench/search_bench.py
echo "==> blocks: $(find "$data/blocks" -name meta.json | wc -l), $(du -sh "$data/blocks" | cut -f1)"
