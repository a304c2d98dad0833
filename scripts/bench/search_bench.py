"""Queries a running vivace (127.0.0.1:3200, loaded by scripts/bench/search.sh) and prints, per
query: cold latency (first run), warm p50 over 5 runs, traces found, spans and bytes inspected,
spans/s and bytes/s of the cold and warm runs, and the server CPU seconds spent (from /metrics;
per core on this machine = CPU seconds, not wall time). Standard library only."""

import json
import os
import statistics
import time
import urllib.parse
import urllib.request

BASE = "http://127.0.0.1:3200"
RANGE = 3 * 3600


def get(path, params=None, accept=None):
    url = BASE + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def cpu_seconds():
    _, body = get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith("process_cpu_seconds"):
            return float(line.split()[-1])
    return 0.0


def search(q, limit=20):
    now = int(time.time())
    dt, body = get("/api/search", {"q": q, "limit": limit, "start": now - RANGE, "end": now})
    return dt, json.loads(body)


def row(name, cold, warm, resp, cpu):
    m = resp.get("metrics", {})
    spans = int(m.get("inspectedSpans", "0"))
    nbytes = int(m.get("inspectedBytes", "0"))
    traces = len(resp.get("traces", []))
    p50 = statistics.median(warm)
    print(
        f"{name:58s} cold {cold*1e3:8.1f} ms  warm p50 {p50*1e3:7.1f} ms  traces {traces:3d}  "
        f"spans {spans:>9,}  bytes {nbytes/1e6:7.1f} MB  "
        f"cold {spans/cold/1e6:6.1f} M spans/s {nbytes/cold/1e9:5.2f} GB/s  "
        f"warm {spans/p50/1e6:7.1f} M spans/s  cpu {cpu:5.2f} s"
    )


QUERIES = [
    ("needle (one trace ID)", None),
    ("needle (an attribute value one span has)", "NEEDLE"),
    ("typical", '{ resource.service.name = "frontend" && duration > 500ms }'),
    ("structural", '{ resource.service.name = "frontend" } >> { status = error }'),
    ("count", "{ } | count() > 10"),
    ("no match", '{ name = "no-such-span-name" }'),
    ("span attribute", "{ span.http.response.status_code = 500 }"),
    ("no match on a span attribute", '{ span.http.route = "/nothing" }'),
    ("exhaustive (no trace has 1000 spans)", "{ } | count() > 1000"),
]


METRICS = [
    "{ } | rate()",
    "{ } | rate() by (resource.service.name)",
    "{ } | quantile_over_time(duration, .5, .99) by (name)",
    "{ status = error } | count_over_time() by (span.http.route)",
]


def metrics():
    """TraceQL metrics over the last hour at a 1 m step: latency, spans counted, spans/s of
    wall time and spans per server CPU-second (per core)."""
    print("== metrics (range: last 1 h, step 1m)")
    for q in METRICS:
        now = int(time.time())
        p = {"q": q, "start": now - 3600, "end": now, "step": "1m"}
        c0 = cpu_seconds()
        cold, body = get("/api/metrics/query_range", p)
        cpu = cpu_seconds() - c0
        resp = json.loads(body)
        warm = [get("/api/metrics/query_range", p)[0] for _ in range(3)]
        spans = int(resp.get("metrics", {}).get("inspectedSpans", "0"))
        p50 = statistics.median(warm)
        print(
            f"{q:62s} cold {cold*1e3:8.1f} ms  warm p50 {p50*1e3:7.1f} ms  series {len(resp.get('series', [])):3d}  "
            f"spans {spans:>10,}  cold {spans/cold/1e6:6.1f} M spans/s  warm {spans/p50/1e6:6.1f} M spans/s  "
            f"cold cpu {cpu:5.2f} s = {spans/max(cpu, 1e-9)/1e6:6.1f} M spans/CPU-s"
        )


def main():
    if os.environ.get("VIVACE_BENCH_ONLY") == "metrics":
        metrics()
        return
    # A needle: one trace by its ID (vivace gen replays templates, so span IDs and attribute
    # values repeat across traces; the trace ID does not).
    _, first = search("{ }", limit=1)
    needle = None
    if first.get("traces"):
        needle = f'{{ trace:id = "{first["traces"][0]["traceID"]}" }}'
    print("== search (range: last 3 h; limit 20 unless said)")
    for name, q in QUERIES:
        if q == "NEEDLE":
            value = os.environ.get("VIVACE_BENCH_NEEDLE")
            q = value and f'{{ span.bench.needle = "{value}" }}'
        q = q or needle
        if q is None:
            continue
        limit = 20
        c0 = cpu_seconds()
        cold, resp = search(q, limit)
        cpu = cpu_seconds() - c0
        warm = [search(q, limit)[0] for _ in range(5)]
        row(f"{name}: {q}", cold, warm, resp, cpu)

    print("== tags")
    now = int(time.time())
    rng = {"start": now - RANGE, "end": now}
    for path, params in [
        ("/api/v2/search/tags", {"limit": 5000}),
        ("/api/v2/search/tag/resource.service.name/values", {}),
        ("/api/v2/search/tag/span.http.route/values", {}),
        ("/api/v2/search/tag/name/values", {"q": '{ resource.service.name = "frontend" }'}),
    ]:
        p = dict(rng, **params)
        times = [get(path, p)[0] for _ in range(6)]
        print(f"{path:58s} cold {times[0]*1e3:8.1f} ms  warm p50 {statistics.median(times[1:])*1e3:7.1f} ms")

    print("== trace by ID (20 traces found by search)")
    _, resp = search("{ }", limit=20)
    ids = [t["traceID"] for t in resp.get("traces", [])]
    lat = []
    for tid in ids:
        dt, _ = get(f"/api/v2/traces/{tid}", accept="application/protobuf")
        lat.append(dt)
    if lat:
        print(f"p50 {statistics.median(lat)*1e3:.1f} ms  max {max(lat)*1e3:.1f} ms over {len(lat)} IDs")

    metrics()

    print("== ack → searchable")
    tid = os.urandom(16).hex()
    t_ns = time.time_ns()
    body = json.dumps({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench-fresh"}}]},
        "scopeSpans": [{"spans": [{"traceId": tid, "spanId": os.urandom(8).hex(), "name": "fresh",
        "startTimeUnixNano": str(t_ns), "endTimeUnixNano": str(t_ns + 1000)}]}]}]}).encode()
    req = urllib.request.Request("http://127.0.0.1:4318/v1/traces", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    acked = time.perf_counter()
    while True:
        _, r = search(f'{{ trace:id = "{tid}" }}', limit=1)
        if r.get("traces"):
            print(f"searchable {(time.perf_counter() - acked)*1e3:.1f} ms after the acknowledgement")
            break
        if time.perf_counter() - acked > 10:
            print("not searchable within 10 s")
            break


if __name__ == "__main__":
    main()
