//! Generates the `tempopb` query messages and the `StreamingQuerier` service from
//! `proto/tempopb/tempo.proto`, and Jaeger's `CollectorService` from
//! `proto/jaeger/api_v2/collector.proto`, with a pure-Rust protobuf compiler (protox): no
//! `protoc` needed.
//! OTLP types the messages embed map to the `opentelemetry-proto` crate's.

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
    Ok(())
}
