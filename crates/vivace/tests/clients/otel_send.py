"""Sends traces to vivace with the real OpenTelemetry Python SDK exporters.

Usage: otel_send.py {grpc|http|json} ENDPOINT OUT_FILE [--traces N] [--seed S] [--header K=V]

Spans are created with the SDK (every attribute type, events, links, statuses, all kinds, several
resources and instrumentation scopes), captured in memory, shuffled, and exported in batches of
mixed traces through the chosen OTLP exporter, so one trace arrives over several requests in
any order. Every batch must be acknowledged with success. OUT_FILE receives the SDK's own OTLP
protobuf encoding of all spans (an ExportTraceServiceRequest): what vivace must give back.
"""

import argparse
import random
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def exporter(transport, endpoint, headers):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers, timeout=10)
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression
        return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=10, compression=Compression.Gzip)
    if transport == "json":
        from opentelemetry.exporter.otlp.json.http import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=10)
    raise SystemExit(f"unknown transport {transport}")


KINDS = [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER]


def make_spans(n_traces, rng):
    memory = InMemorySpanExporter()
    providers = []
    for svc in ("frontend", "checkout", "db-proxy"):
        resource = Resource.create({
            "service.name": svc,
            "service.version": "1.4.2",
            "host.cores": 8,
            "host.load": 0.75,
            "deployment.canary": svc == "checkout",
            "k8s.labels": ["a", "b", svc],
        })
        p = TracerProvider(resource=resource)
        p.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(p)
    for t in range(n_traces):
        p = rng.choice(providers)
        tracer_a = p.get_tracer("vivace.test.a", "1.2.3", attributes={"scope.attr": "x", "scope.n": 7})
        tracer_b = p.get_tracer("vivace.test.b")
        with tracer_a.start_as_current_span(f"GET /api/{t}", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET",
            "http.response.status_code": 200 + (t % 5),
            "http.route": "/api/{id}",
            "ratio": t / 7.0,
            "retry": t % 2 == 0,
            "tags": ["x", "y"],
            "ints": [1, -2, 3 * t],
            "floats": [0.5, -1.25],
            "bools": [True, False],
            "big": 2**62 + t,
            "unicode": "héllo ✓ 世界",
            "empty": "",
        }) as root:
            root.add_event("cache.miss", {"key": f"k{t}", "size": 12, "hit": False, "lat": 1.5})
            root.add_event("plain")
            prev_ctx = root.get_span_context()
            for c in range(rng.randint(1, 6)):
                tracer = tracer_a if c % 2 == 0 else tracer_b
                kind = KINDS[(t + c) % len(KINDS)]
                links = [Link(prev_ctx, {"link.kind": "follows", "link.n": c})] if c % 3 == 1 else []
                with tracer.start_as_current_span(f"child-{c}", kind=kind, links=links,
                                                  attributes={"db.system": "postgresql", "child.i": c}) as child:
                    if c % 4 == 3:
                        child.set_status(Status(StatusCode.ERROR, "connection reset"))
                        child.record_exception(ValueError("boom"))
                    elif c % 4 == 2:
                        child.set_status(Status(StatusCode.OK))
                    prev_ctx = child.get_span_context()
    return memory.get_finished_spans()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport")
    ap.add_argument("endpoint")
    ap.add_argument("out")
    ap.add_argument("--traces", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--header", action="append", default=[])
    args = ap.parse_args()
    rng = random.Random(args.seed)
    headers = dict(h.split("=", 1) for h in args.header)
    spans = list(make_spans(args.traces, rng))
    rng.shuffle(spans)
    exp = exporter(args.transport, args.endpoint, headers)
    for i in range(0, len(spans), 17):
        result = exp.export(spans[i:i + 17])
        if result != SpanExportResult.SUCCESS:
            print(f"export of batch {i // 17} failed: {result}", file=sys.stderr)
            sys.exit(1)
    exp.shutdown()
    with open(args.out, "wb") as f:
        f.write(encode_spans(spans).SerializeToString())
    print(f"sent {len(spans)} spans")


if __name__ == "__main__":
    main()
