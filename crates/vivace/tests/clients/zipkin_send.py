"""Sends traces to vivace's Zipkin receiver with the real OpenTelemetry Python SDK Zipkin JSON
exporter (Zipkin v2 JSON over HTTP).

Usage: zipkin_send.py ENDPOINT OUT_FILE [--traces N] [--header K=V] [--v1]

With --v1 the exporter speaks Zipkin v1 JSON (which carries no span kind).

Each trace: a SERVER root, an INTERNAL child with an event, a CLIENT grandchild with an error
status, attributes of every type. OUT_FILE receives what the SDK made, per span: trace and span
IDs, parent, name, kind, start and end (ns), status code, attributes (as the exporter's string
tags) and event names — what vivace must give back.
"""

import argparse
import json
import sys

from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("out")
    ap.add_argument("--traces", type=int, default=10)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--v1", action="store_true")
    args = ap.parse_args()

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "zipkin-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("zipkin.test", "0.3")
    for t in range(args.traces):
        root = tracer.start_span("GET /orders", kind=SpanKind.SERVER,
                                 attributes={"http.method": "GET", "http.status_code": 200 + t})
        ctx = set_span_in_context(root)
        work = tracer.start_span("compute", context=ctx, attributes={"ratio": 0.5, "ok": True})
        work.add_event("cache miss", {"key": f"k{t}"})
        wctx = set_span_in_context(work)
        call = tracer.start_span("SELECT", context=wctx, kind=SpanKind.CLIENT,
                                 attributes={"db.system": "postgresql", "tags": ["a", "b"]})
        call.set_status(Status(StatusCode.ERROR, "timeout"))
        call.end()
        work.end()
        root.end()

    spans = memory.get_finished_spans()
    headers = dict(h.split("=", 1) for h in args.header)
    from opentelemetry.exporter.zipkin.encoder import Protocol
    # The v1 encoder compares max_tag_value_length with 0, so it must be set.
    exporter = ZipkinExporter(endpoint=args.endpoint, version=Protocol.V1 if args.v1 else Protocol.V2,
                              max_tag_value_length=4096)
    if headers:
        exporter.session.headers.update(headers)
    res = exporter.export(spans)
    if res != SpanExportResult.SUCCESS:
        print(f"export failed: {res}", file=sys.stderr)
        sys.exit(1)

    def tag(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return json.dumps([str(x) for x in v], separators=(",", ":"))
        return str(v)

    out = []
    for s in spans:
        c = s.get_span_context()
        out.append({
            "trace_id": format(c.trace_id, "032x"),
            "span_id": format(c.span_id, "016x"),
            "parent_id": format(s.parent.span_id, "016x") if s.parent else "",
            "name": s.name,
            "kind": s.kind.name,
            "start": s.start_time,
            "end": s.end_time,
            "status": s.status.status_code.name,
            "attributes": {k: tag(v) for k, v in s.attributes.items()},
            "events": [e.name for e in s.events],
        })
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
