#!/usr/bin/env bash
# Receiver benchmark: prints figures, asserts nothing (machines are shared and noisy).
#
#   scripts/bench/receivers.sh [SECONDS]     # default 15 s per protocol
#
# For each protocol, starts a fresh release vivace on 127.0.0.1 with every receiver (limits
# lifted, blocks cut as usual; fresh, so no protocol pays for the blocks of the one before) and
# sends the same synthetic traces (`vivace gen`, 8 requests in flight,
# ~600-span requests; Jaeger and OpenCensus requests carry one service's spans each) over OTLP
# gRPC and HTTP, Zipkin JSON, Jaeger Thrift HTTP, Jaeger gRPC or OpenCensus, and prints spans/s,
# the server's CPU per span and the export latency p50 for each. Jaeger's UDP agent port has no
# acknowledgement: it is sent at UDP_RATE spans/s (default 200,000; 40-span datagrams) and
# measured by what the server received (`tempo_distributor_spans_received_total`).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
secs=${1:-15}
udp_rate=${UDP_RATE:-200000}
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/vivace"
data=$(mktemp -d /tmp/vivace-recv-bench.XXXXXX)
cat >"$data/vivace.yaml" <<YAML
server:
  http_listen_address: 127.0.0.1
  grpc_listen_port: 0
distributor:
  receivers:
    otlp:
      protocols:
        grpc: { endpoint: 127.0.0.1:4317 }
        http: { endpoint: 127.0.0.1:4318 }
    zipkin: { endpoint: 127.0.0.1:9411 }
    jaeger:
      protocols:
        grpc: { endpoint: 127.0.0.1:14250 }
        thrift_http: { endpoint: 127.0.0.1:14268 }
        thrift_compact: { endpoint: 127.0.0.1:6831 }
    opencensus: { endpoint: 127.0.0.1:55678 }
live_store:
  max_live_traces_bytes: 0
overrides:
  defaults:
    ingestion:
      max_traces_per_user: 0
      rate_limit_bytes: 0
YAML
pid=
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
printf '%-14s %12s %14s %10s\n' protocol spans/s "µs CPU/span" "p50 ms"
for p in grpc http zipkin jaeger-thrift jaeger-grpc opencensus jaeger-udp; do
  rm -rf "$data/data"
  "$bin" -config.file="$data/vivace.yaml" --data-dir "$data/data" 2>"$data/log" &
  pid=$!
  for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && break; sleep 0.1; done
  if [ "$p" = jaeger-udp ]; then
    out=$("$bin" gen --protocol "$p" --duration "${secs}s" --concurrency 2 --rate "$udp_rate" --batch-spans 600 --pid $pid 2>/dev/null)
    sleep 2
    got=$(curl -s localhost:3200/metrics | awk '/^tempo_distributor_spans_received_total/ { s += $2 } END { print s + 0 }')
    cpus=$(echo "$out" | awk '/^server:/ { print $2 }')
    rate=$(python3 -c "print(round($got / $secs))")
    cpu=$(python3 -c "print(round($cpus / max($got, 1) * 1e6, 2))")
    p50="- ($got received of $(echo "$out" | awk '/^sent:/ { print $2 }') sent)"
  else
    out=$("$bin" gen --protocol "$p" --duration "${secs}s" --concurrency 8 --batch-spans 600 --pid $pid 2>/dev/null)
    rate=$(echo "$out" | awk '/^throughput/ { print $2 }')
    cpu=$(echo "$out" | awk '/^server:/ { for (i = 1; i <= NF; i++) if ($i == "µs") print $(i-1) }')
    p50=$(echo "$out" | awk '/^export latency/ { print $4 }')
  fi
  printf '%-14s %12s %14s %10s\n' "$p" "$rate" "$cpu" "$p50"
  kill $pid; wait $pid 2>/dev/null || true
done
