#!/usr/bin/env bash
# Metrics-generator benchmark: prints figures, asserts nothing (machines are shared and noisy).
#
#   scripts/bench/generator.sh [SECONDS] [RATE]     # default 30 s at 100,000 spans/s
#
# Starts a real Prometheus (remote-write receiver) and a release vivace on 127.0.0.1 with
# scripts/bench/blocks.yaml plus the generator (service-graphs and span-metrics for every tenant,
# collection every 15 s), sends `vivace gen --rate RATE` for SECONDS, waits for a last
# collection, and prints spans/s, the generator's CPU per span (its thread's CPU from
# `vivace_background_cpu_seconds{task="vivace-generator"}`) next to ingest's, active series and
# samples delivered; then the registry's memory per 10k series (a counting allocator, see
# crates/generator/examples/series_memory.rs). Both processes are stopped by PID at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
secs=${1:-30}
rate=${2:-100000}
prom_bin=${VIVACE_PROMETHEUS:-$(command -v prometheus)}
cargo build --release --quiet
cargo build --release --quiet -p vivace-generator --example series_memory
bin="$CARGO_TARGET_DIR/release/vivace"
data=$(mktemp -d /tmp/vivace-gen-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'global: {scrape_interval: 15s}\nscrape_configs: []\n' >"$data/prometheus.yml"
"$prom_bin" --config.file="$data/prometheus.yml" --storage.tsdb.path="$data/prom" \
  --web.listen-address=127.0.0.1:$port --web.enable-remote-write-receiver 2>"$data/prom.log" &
prom=$!
{ cat scripts/bench/blocks.yaml; cat <<YAML
  # appended by generator.sh
    metrics_generator:
      processors: [service-graphs, span-metrics]
metrics_generator:
  registry:
    collection_interval: 15s
  storage:
    remote_write:
      - url: http://127.0.0.1:$port/api/v1/write
YAML
} >"$data/vivace.yaml"
"$bin" -config.file="$data/vivace.yaml" --data-dir "$data/vivace" 2>"$data/log" &
pid=$!
trap 'kill $pid $prom 2>/dev/null; wait $pid $prom 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && curl -sf 127.0.0.1:$port/-/ready >/dev/null && break; sleep 0.1; done
metric() { curl -s localhost:3200/metrics | awk -v m="$1" '$1 == m { s += $2 } END { print s + 0 }'; }
metric_like() { curl -s localhost:3200/metrics | awk -v m="$1" 'index($1, m) == 1 { s += $2 } END { print s + 0 }'; }
cpu0=$(metric process_cpu_seconds)
out=$("$bin" gen --duration "${secs}s" --rate "$rate" --pid $pid)
echo "$out" | tail -4
spans=$(echo "$out" | awk '/acknowledged/ { print $2 }')
echo "==> waiting 20 s for the generator to catch up and a collection to be delivered"
sleep 20
cpu1=$(metric process_cpu_seconds)
gen=$(metric 'vivace_background_cpu_seconds{task="vivace-generator"}')
flush=$(metric 'vivace_background_cpu_seconds{task="vivace-flush"}')
compact=$(metric 'vivace_background_cpu_seconds{task="vivace-compact"}')
seen=$(metric_like 'vivace_generator_spans_received_total')
series=$(metric_like 'vivace_generator_active_series')
sent=$(metric_like 'vivace_generator_remote_write_samples_sent_total')
dropped=$(metric_like 'vivace_generator_remote_write_samples_dropped_total')
python3 - "$spans" "$seen" "$cpu0" "$cpu1" "$gen" "$flush" "$compact" "$series" "$sent" "$dropped" <<'PY'
import sys
spans, seen, cpu0, cpu1, gen, flush, compact, series, sent, dropped = (float(x) for x in sys.argv[1:])
us = lambda s: s / max(spans, 1) * 1e6
ingest = (cpu1 - cpu0) - gen - flush - compact
print(f"generator: {seen:.0f} of {spans:.0f} spans processed; {us(gen):.2f} µs CPU per span "
      f"(ingest {us(ingest):.2f}, cutting {us(flush):.2f}, compaction {us(compact):.2f})")
print(f"generator: {series:.0f} active series; {sent:.0f} samples delivered, {dropped:.0f} dropped")
PY
"$CARGO_TARGET_DIR/release/examples/series_memory"
