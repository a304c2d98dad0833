//! Generates the `tempopb` query messages and the `StreamingQuerier` service from
//! `proto/tempopb/tempo.proto`, and Jaeger's `CollectorService` from
//! `proto/jaeger/api_v2/collector.proto`, with a pure-Rust protobuf compiler (protox): no
//! `protoc` needed.
//! OTLP types the messages embed map to the `opentelemetry-proto` crate's. The OTLP trace
//! service is generated once more by hand (tonic's manual builder), taking its request as bytes.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        [
            "tempopb/tempo.proto",
            "jaeger/api_v2/collector.proto",
            "opencensus/proto/agent/trace/v1/trace_service.proto",
        ],
        ["proto"],
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(
            ".opentelemetry.proto.common.v1",
            "::opentelemetry_proto::tonic::common::v1",
        )
        .compile_fds(fds)?;

    // The OTLP trace service again, its request left as bytes (`raw.rs`).
    let export = tonic_build::manual::Method::builder()
        .name("export")
        .route_name("Export")
        .input_type("::prost::bytes::Bytes")
        .output_type(
            "::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse",
        )
        .codec_path("crate::raw::RawCodec")
        .build();
    let service = tonic_build::manual::Service::builder()
        .name("TraceService")
        .package("opentelemetry.proto.collector.trace.v1")
        .method(export)
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[service]);
    Ok(())
}
