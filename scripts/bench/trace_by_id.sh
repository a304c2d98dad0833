#!/usr/bin/env bash
# Trace by ID over big compacted blocks on local disk, as a user's lookups after a restart: prints
# figures, asserts nothing (machines are shared and noisy: compare binaries back to back).
#
#   scripts/bench/trace_by_id.sh [BINARY...]    # default: this checkout's release build
#
# Loads 6 s of `vivace gen` at full speed (limits lifted), waits 70 s for blocks to be cut and
# compacted (30–50 MB blocks), picks 200 trace IDs by search, then for each binary: starts it on
# the same data dir (nothing live), looks every ID up twice over /api/traces/<id> (protobuf) and
# prints p50/p90. The servers are stopped by PID.
# The blocks are written by the first binary (its page layout). Its first round reads from a cold
# page cache, so every binary is measured twice, in turn (ROUNDS=2): compare the later rounds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "$CARGO_TARGET_DIR/release/vivace"
fi
data=$(mktemp -d /tmp/vivace-tbid.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$data"' EXIT
cat > "$data/c.yaml" <<'Y'
live_store: { max_live_traces_bytes: 0, complete_block_timeout: 5s }
compactor: { compaction: { compaction_cycle: 5s } }
overrides: { defaults: { ingestion: { max_traces_per_user: 0, rate_limit_bytes: 0 } } }
Y
wait_ready() { for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && return; sleep 0.1; done; }
"$1" -config.file="$data/c.yaml" --data-dir "$data" 2>"$data/log" &
pid=$!; wait_ready
"$1" gen --duration 6s --concurrency 2 --batch-spans 600 | grep throughput
echo "==> waiting 70 s for blocks to be cut and compacted"
sleep 70
now=$(date +%s)
curl -sG localhost:3200/api/search --data-urlencode 'q={ }' -d limit=200 -d start=$((now - 3600)) -d end=$((now + 1)) \
  | python3 -c 'import json,sys; [print(t["traceID"]) for t in json.load(sys.stdin)["traces"]]' > "$data/ids"
kill $pid; wait $pid 2>/dev/null || true; pid=""
echo "==> blocks (bytes): $(ls -l "$data"/blocks/single-tenant/*/data.parquet | awk '{print $5}' | sort -n | tr '\n' ' ')"
for round in $(seq "${ROUNDS:-2}"); do for bin in "$@"; do
  "$bin" -config.file="$data/c.yaml" --data-dir "$data" 2>>"$data/log" &
  pid=$!; wait_ready
  python3 - "$data/ids" "$bin" "$round" <<'P'
import sys, time, urllib.request
ids = [l.strip() for l in open(sys.argv[1]) if l.strip()]
lat = []
for i in ids * 2:
    t = time.perf_counter()
    urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:3200/api/traces/{i}", headers={"Accept": "application/protobuf"})).read()
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"round {sys.argv[3]}, {sys.argv[2]}: {len(lat)} lookups, p50 {lat[len(lat)//2]:.2f} ms, p90 {lat[int(len(lat)*.9)]:.2f} ms, max {lat[-1]:.2f} ms")
P
  kill $pid; wait $pid 2>/dev/null || true; pid=""
done; done
