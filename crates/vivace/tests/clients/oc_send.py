"""Sends traces to vivace's OpenCensus receiver with the real OpenCensus Python agent exporter
(opencensus-ext-ocagent, gRPC export stream).

Usage: oc_send.py HOST:PORT OUT_FILE [--traces N]

Runs in its own venv (scripts/requirements-opencensus.txt; needs protobuf 3, run with
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python). Each trace: a SERVER root with attributes and a
CLIENT child with an annotation and an error status. OUT_FILE receives, per span, what vivace
must give back.
"""

import argparse
import json

from opencensus.common.transports.sync import SyncTransport
from opencensus.ext.ocagent.trace_exporter import TraceExporter
from opencensus.trace import execution_context
from opencensus.trace.samplers import AlwaysOnSampler
from opencensus.trace.span import SpanKind
from opencensus.trace.status import Status
from opencensus.trace.tracer import Tracer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("out")
    ap.add_argument("--traces", type=int, default=5)
    args = ap.parse_args()

    exporter = TraceExporter(service_name="oc-svc", endpoint=args.endpoint, transport=SyncTransport)
    out = []
    for t in range(args.traces):
        execution_context.clear()
        tracer = Tracer(exporter=exporter, sampler=AlwaysOnSampler())
        with tracer.span(name="GET /basket") as root:
            root.span_kind = SpanKind.SERVER
            root.add_attribute("http.status_code", 200 + t)
            root.add_attribute("cached", True)
            with tracer.span(name="charge") as call:
                call.span_kind = SpanKind.CLIENT
                call.add_annotation("retry", attempt=2)
                call.status = Status(5, "declined")
        for s in (root, call):
            out.append({
                "trace_id": tracer.span_context.trace_id,
                "span_id": s.span_id,
                "parent_id": s.parent_span.span_id if s is call else "",
                "name": s.name,
                "kind": "SERVER" if s is root else "CLIENT",
                "error": s is call,
                "attributes": {"http.status_code": 200 + t, "cached": True} if s is root else {},
                "events": ["retry"] if s is call else [],
            })
        tracer.finish()
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
