#!/usr/bin/env bash
# Search over live data: prints figures, asserts nothing (machines are shared and noisy).
#
#   scripts/bench/live_search.sh [BIN...]     # default: a release build of this checkout
#
# For each binary in turn (give several to compare builds, e.g. a copy of an older release
# binary first): starts it on 127.0.0.1 (default ports) with scripts/bench/search.yaml and a
# fresh data dir, sends 8 s of `vivace gen` at 20k spans/s (~160k spans, all still in the
# live-store), waits SETTLE seconds (default 4: traces complete into chunks), then runs each
# query 7 times: the first run (it builds the live-store's search batches) and the p50 of the
# other six, with the spans inspected and the jobs. The server is stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
if [ $# -eq 0 ]; then
    (cd "$root" && cargo build --release --quiet)
    set -- "$CARGO_TARGET_DIR/release/vivace"
fi
for bin in "$@"; do
    data=$(mktemp -d /tmp/vivace-live-bench.XXXXXX)
    "$bin" -config.file="$root/scripts/bench/search.yaml" --data-dir "$data" 2>"$data/log" &
    pid=$!
    trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
    for _ in $(seq 100); do curl -sf localhost:3200/ready >/dev/null && break; sleep 0.1; done
    "$bin" gen --duration 8s --rate 20000 >/dev/null 2>&1
    sleep "${SETTLE:-4}"
    echo "== $bin"
    python3 - <<'PY'
import json, statistics, time, urllib.parse, urllib.request
QUERIES = [
    '{ name = "no-such-span-name" }',
    '{ resource.service.name = "frontend" && duration > 500ms }',
    '{ resource.service.name = "frontend" } >> { status = error }',
    '{ } | count() > 10',
    '{ span.http.response.status_code = 500 }',
    '{ } | count() > 1000',
    '{ span.http.route = "/api/checkout" } | count() > 1000',
]
for q in QUERIES:
    times = []
    for _ in range(7):
        now = int(time.time())
        url = "http://127.0.0.1:3200/api/search?" + urllib.parse.urlencode({"q": q, "start": now - 3600, "end": now})
        t0 = time.perf_counter()
        body = urllib.request.urlopen(url, timeout=60).read()
        times.append(time.perf_counter() - t0)
    m = json.loads(body).get("metrics", {})
    print(f"{q[:60]:60s} first {times[0]*1e3:7.1f} ms  p50 {statistics.median(times[1:])*1e3:6.1f} ms  "
          f"spans {m.get('inspectedSpans')}  jobs {m.get('totalJobs')}")
PY
    kill $pid; wait $pid 2>/dev/null || true; rm -rf "$data"
    trap - EXIT
done
