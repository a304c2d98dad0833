"""Sends traces to vivace's Jaeger receivers with real Jaeger clients.

Usage: jaeger_send.py MODE HOST PORT OUT_FILE [--traces N]

MODE:
  otel-udp     OpenTelemetry Jaeger Thrift exporter 1.21 to the agent port (UDP, Thrift compact)
  otel-http    the same exporter to the collector endpoint (HTTP, Thrift binary, /api/traces)
  otel-grpc    OpenTelemetry Jaeger proto-gRPC exporter 1.21 (jaeger.api_v2.CollectorService)
  client       jaeger-client 4.8 (OpenTracing) to the agent port (UDP, Thrift compact)

Runs in its own venv (scripts/requirements-jaeger.txt: these exporters need SDK 1.21 and
protobuf 3). Each trace: a SERVER root with typed attributes, a CLIENT child with an event and an
error. OUT_FILE receives, per span: trace and span IDs, parent, name, kind, start and end (ns),
whether it failed, attributes and event names — what vivace must give back.
"""

import argparse
import json
import sys
import time


def otel(mode, host, port, n):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "jaeger-" + mode, "host.name": "h1"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("jaeger.test", "0.9")
    for t in range(n):
        root = tracer.start_span("GET /cart", kind=SpanKind.SERVER,
                                 attributes={"http.status_code": 200 + t, "ratio": 0.25, "cached": False})
        call = tracer.start_span("charge", context=set_span_in_context(root), kind=SpanKind.CLIENT,
                                 attributes={"peer.service": "payments"})
        call.add_event("retry", {"attempt": 2})
        call.set_status(Status(StatusCode.ERROR, "declined"))
        call.end()
        root.end()
    spans = memory.get_finished_spans()
    if mode == "otel-grpc":
        from opentelemetry.exporter.jaeger.proto.grpc import JaegerExporter
        exporter = JaegerExporter(collector_endpoint=f"{host}:{port}", insecure=True)
    elif mode == "otel-http":
        from opentelemetry.exporter.jaeger.thrift import JaegerExporter
        exporter = JaegerExporter(collector_endpoint=f"http://{host}:{port}/api/traces?format=jaeger.thrift")
    else:
        from opentelemetry.exporter.jaeger.thrift import JaegerExporter
        exporter = JaegerExporter(agent_host_name=host, agent_port=port, udp_split_oversized_batches=True)
    if exporter.export(spans) != SpanExportResult.SUCCESS:
        print("export failed", file=sys.stderr)
        sys.exit(1)
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
            "error": s.status.status_code == StatusCode.ERROR,
            "attributes": dict(s.attributes),
            "events": [e.name for e in s.events],
        })
    return out


def client(host, port, n):
    from jaeger_client import Config

    cfg = Config(config={"sampler": {"type": "const", "param": 1},
                         "local_agent": {"reporting_host": host, "reporting_port": port},
                         "reporter_flush_interval": 0.2, "logging": False},
                 service_name="jaeger-client", validate=True)
    tracer = cfg.initialize_tracer()
    out = []
    for t in range(n):
        root = tracer.start_span("GET /cart", tags={"span.kind": "server", "http.status_code": 200 + t})
        call = tracer.start_span("charge", child_of=root, tags={"span.kind": "client", "error": True})
        call.log_kv({"event": "retry", "attempt": 2})
        call.finish()
        root.finish()
        for s, parent in ((call, root), (root, None)):
            out.append({
                "trace_id": format(s.trace_id, "032x"),
                "span_id": format(s.span_id, "016x"),
                "parent_id": format(parent.span_id, "016x") if parent else "",
                "name": s.operation_name,
                "kind": "CLIENT" if parent else "SERVER",
                "start": int(s.start_time * 1e9),
                "end": int(s.end_time * 1e9),
                "error": parent is not None,
                "attributes": {"http.status_code": 200 + t} if parent is None else {},
                "events": ["retry"] if parent else [],
            })
    time.sleep(1.0)
    tracer.close()
    time.sleep(1.0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("out")
    ap.add_argument("--traces", type=int, default=10)
    args = ap.parse_args()
    if args.mode == "client":
        out = client(args.host, args.port, args.traces)
    else:
        out = otel(args.mode, args.host, args.port, args.traces)
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
