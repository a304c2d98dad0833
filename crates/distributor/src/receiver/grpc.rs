//! OTLP gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` (gzip and zstd
//! request compression accepted). The request reaches the distributor as its protobuf bytes
//! ([`vivace_proto::raw`]).

use std::sync::Arc;

use bytes::Bytes;
use tonic::codec::CompressionEncoding;
use vivace_common::to_tonic;
use vivace_proto::otlp::collector::ExportTraceServiceResponse;
use vivace_proto::raw::trace_service_server::{TraceService, TraceServiceServer};

use crate::Distributor;

/// The OTLP trace service.
#[derive(Debug)]
pub struct OtlpGrpc {
    distributor: Arc<Distributor>,
    multitenancy: bool,
}

/// The tonic service for the OTLP gRPC receiver. `max_recv_bytes` bounds a request message after
/// decompression; a compressed message inflating past it is refused with RESOURCE_EXHAUSTED.
pub fn service(
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_recv_bytes: usize,
) -> TraceServiceServer<OtlpGrpc> {
    TraceServiceServer::new(OtlpGrpc {
        distributor,
        multitenancy,
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .accept_compressed(CompressionEncoding::Zstd)
    .max_decoding_message_size(max_recv_bytes)
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<Bytes>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let header = request
            .metadata()
            .get("x-scope-orgid")
            .map(|v| v.as_bytes().to_vec());
        let tenant = super::tenant_of(self.multitenancy, header.as_deref()).map_err(to_tonic)?;
        let outcome = self
            .distributor
            .push(&tenant, request.into_inner())
            .await
            .map_err(to_tonic)?;
        let partial_success = outcome.partial_success();
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}
