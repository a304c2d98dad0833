"""Sends a known service graph to vivace with the real OpenTelemetry Python SDK (OTLP gRPC).

Usage: otel_graph.py ENDPOINT --rounds N [--errors-every K] [--header K=V] [--names M]

Each round is one trace:

    frontend  SERVER "GET /checkout"   root (no parent)                 60 ms
    frontend  CLIENT "POST /pay"       child of the root                50 ms
    checkout  SERVER "POST /pay"       child of that client span        40 ms, ERROR every K rounds
    checkout  CLIENT "SELECT orders"   db.system=postgresql, db.name=orders          10 ms
    checkout  CLIENT "GET /rates"      peer.service=rates-api (no server span)       20 ms

`frontend` runs on host.id=host-1 (k8s.node.name=node-a for checkout). With --names M > 0 the
checkout server span is named "POST /pay/<round % M>" instead (for cardinality limits).
Every batch must be acknowledged with success; prints the trace IDs sent.
"""

import argparse
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

MS = 1_000_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--errors-every", type=int, default=0)
    ap.add_argument("--names", type=int, default=0)
    ap.add_argument("--header", action="append", default=[])
    args = ap.parse_args()
    headers = dict(h.split("=", 1) for h in args.header)

    memory = InMemorySpanExporter()
    front = TracerProvider(resource=Resource.create({"service.name": "frontend", "host.id": "host-1"}))
    check = TracerProvider(resource=Resource.create({
        "service.name": "checkout", "service.namespace": "shop", "k8s.node.name": "node-a"}))
    for p in (front, check):
        p.add_span_processor(SimpleSpanProcessor(memory))
    ft = front.get_tracer("graph")
    ct = check.get_tracer("graph")

    now = time.time_ns()
    ids = []
    for r in range(args.rounds):
        t0 = now + r * 100 * MS
        root = ft.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0)
        ids.append(format(root.get_span_context().trace_id, "032x"))
        ctx = trace.set_span_in_context(root)
        call = ft.start_span("POST /pay", context=ctx, kind=SpanKind.CLIENT, start_time=t0 + 5 * MS)
        cctx = trace.set_span_in_context(call)
        name = "POST /pay" if args.names <= 0 else f"POST /pay/{r % args.names}"
        srv = ct.start_span(name, context=cctx, kind=SpanKind.SERVER, start_time=t0 + 10 * MS)
        sctx = trace.set_span_in_context(srv)
        db = ct.start_span("SELECT orders", context=sctx, kind=SpanKind.CLIENT, start_time=t0 + 12 * MS,
                           attributes={"db.system": "postgresql", "db.name": "orders"})
        db.end(end_time=t0 + 22 * MS)
        rates = ct.start_span("GET /rates", context=sctx, kind=SpanKind.CLIENT, start_time=t0 + 25 * MS,
                              attributes={"peer.service": "rates-api"})
        rates.end(end_time=t0 + 45 * MS)
        if args.errors_every > 0 and r % args.errors_every == 0:
            srv.set_status(Status(StatusCode.ERROR, "payment declined"))
        srv.end(end_time=t0 + 50 * MS)
        call.end(end_time=t0 + 55 * MS)
        root.end(end_time=t0 + 60 * MS)

    spans = memory.get_finished_spans()
    exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=True, headers=headers, timeout=10)
    for i in range(0, len(spans), 200):
        res = exporter.export(spans[i:i + 200])
        if res != SpanExportResult.SUCCESS:
            print(f"export failed: {res}", file=sys.stderr)
            sys.exit(1)
    exporter.shutdown()
    print("\n".join(ids))


if __name__ == "__main__":
    main()
