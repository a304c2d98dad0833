#!/usr/bin/env bash
# Compares release builds on the same blocks: prints figures, asserts nothing.
#
#   scripts/bench/search_ab.sh BIN_A BIN_B [BIN...]     # e.g. copies of target/release/vivace
#
# Loads SPANS (default 5,000,000) spans with BIN_A as scripts/bench/search.sh does (a needle span
# first, then `vivace gen`), waits WAIT seconds (default 90: blocks cut and compacted), then
# ROUNDS times (default 2) restarts the server on that data dir with each binary in turn and
# prints, per query, the median of 9 curl timings (a warm figure: the first of the 9 is cold).
# Alternating builds on one machine and one data set is what makes a before/after readable on
# these shared, noisy machines. The server is stopped by PID and the data dir removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [BIN...]" >&2; exit 2; }
spans=${SPANS:-5000000}
data=$(mktemp -d /tmp/vivace-search-ab.XXXXXX)
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop; rm -rf "$data"' EXIT
start() {
  "$1" -config.file=scripts/bench/search.yaml --data-dir "$data" 2>>"$data/log" >/dev/null &
  pid=$!
  for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && break; sleep 0.2; done
}
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
start "$1"
needle="needle-$(hex 8)"
now_ns=$(date +%s%N)
curl -sf -X POST localhost:4318/v1/traces -H 'Content-Type: application/json' -d "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"frontend\"}}]},\"scopeSpans\":[{\"spans\":[{\"traceId\":\"$(hex 16)\",\"spanId\":\"$(hex 8)\",\"name\":\"GET /needle\",\"startTimeUnixNano\":\"$now_ns\",\"endTimeUnixNano\":\"$((now_ns + 1000000))\",\"attributes\":[{\"key\":\"bench.needle\",\"value\":{\"stringValue\":\"$needle\"}}]}]}]}]}" >/dev/null
secs=$(( spans / 150000 + 1 ))
echo "==> loading ~$spans spans with $1 ($secs s of vivace gen), then ${WAIT:-90} s for blocks"
"$1" gen --duration "${secs}s" --rate $(( spans / secs )) --pid "$pid" | tail -1
sleep "${WAIT:-90}"
queries=(
  "{ span.bench.needle = \"$needle\" }"
  '{ resource.service.name = "frontend" && duration > 500ms }'
  '{ resource.service.name = "frontend" } >> { status = error }'
  '{ } | count() > 10'
  '{ span.http.route = "/healthz" }'
  '{ } | count() > 1000'
)
for round in $(seq "${ROUNDS:-2}"); do
  for bin in "$@"; do
    stop
    start "$bin"
    sleep 8 # the block list polled and primed
    now=$(date +%s)
    for q in "${queries[@]}"; do
      ms=$(for _ in $(seq 9); do
        curl -s -o /dev/null -w '%{time_total}\n' -G localhost:3200/api/search \
          --data-urlencode "q=$q" --data-urlencode start=$((now - 10800)) --data-urlencode end=$now
      done | sort -n | sed -n 5p | awk '{ printf "%.1f", $1 * 1000 }')
      printf 'round %s  %-28s %8s ms  %s\n' "$round" "$(basename "$bin")" "$ms" "$q"
    done
  done
done
