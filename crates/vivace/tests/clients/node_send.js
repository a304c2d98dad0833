// Sends traces to vivace with the real OpenTelemetry JS SDK exporters (pinned in
// scripts/node-clients/package-lock.json; NODE_PATH points at their node_modules).
//
// Usage: node node_send.js MODE ENDPOINT OUT_FILE [TRACES]
//   MODE: zipkin (v2 JSON), otlp-http (JSON), otlp-proto (HTTP protobuf), otlp-grpc
//
// Each trace: a SERVER root with typed attributes, a CLIENT child with an event and an error.
// OUT_FILE receives, per span, what vivace must give back.

const fs = require('fs');
const api = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

function exporter(mode, endpoint) {
  switch (mode) {
    case 'zipkin': {
      const { ZipkinExporter } = require('@opentelemetry/exporter-zipkin');
      return new ZipkinExporter({ url: endpoint });
    }
    case 'otlp-http': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({ url: endpoint });
    }
    case 'otlp-proto': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
      return new OTLPTraceExporter({ url: endpoint });
    }
    case 'otlp-grpc': {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
      return new OTLPTraceExporter({ url: endpoint });
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

async function main() {
  const [mode, endpoint, out, n] = process.argv.slice(2);
  const traces = Number(n || 8);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `node-${mode}` }),
    spanProcessors: [new SimpleSpanProcessor(exporter(mode, endpoint))],
  });
  const tracer = provider.getTracer('node.test', '1.0.0');
  const sent = [];
  for (let t = 0; t < traces; t++) {
    const root = tracer.startSpan('GET /shop', {
      kind: api.SpanKind.SERVER,
      attributes: { 'http.status_code': 200 + t, 'ratio': 0.5, 'cached': true },
    });
    const ctx = api.trace.setSpan(api.context.active(), root);
    const call = tracer.startSpan('pay', { kind: api.SpanKind.CLIENT }, ctx);
    call.addEvent('retry', { attempt: 2 });
    call.setStatus({ code: api.SpanStatusCode.ERROR, message: 'declined' });
    call.end();
    root.end();
    for (const [s, parent] of [[root, null], [call, root]]) {
      sent.push({
        trace_id: s.spanContext().traceId,
        span_id: s.spanContext().spanId,
        parent_id: parent ? parent.spanContext().spanId : '',
        name: parent ? 'pay' : 'GET /shop',
        kind: parent ? 'CLIENT' : 'SERVER',
        error: parent !== null,
        events: parent ? ['retry'] : [],
      });
    }
  }
  await provider.forceFlush();
  await provider.shutdown();
  fs.writeFileSync(out, JSON.stringify(sent));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
