//! The OpenCensus agent's trace export stream (`distributor.receivers.opencensus`, default
//! `:55678`): `opencensus.proto.agent.trace.v1.TraceService/Export`, a bidirectional stream of
//! export requests, each answered with an (empty) response once its spans are durable. The
//! stream's first request names the node; later ones may leave it out. A request that does not
//! translate or that a limit refuses ends the stream with the gRPC status (InvalidArgument,
//! ResourceExhausted…); what was answered before stays acknowledged. Tenant from the
//! `x-scope-orgid` metadata of the stream. `Config` (sampling updates) is not served.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use vivace_common::{Status, to_tonic};
use vivace_proto::opencensus::trace_service_server::{TraceService, TraceServiceServer};
use vivace_proto::opencensus::{
    CurrentLibraryConfig, ExportTraceServiceRequest, ExportTraceServiceResponse,
    UpdatedLibraryConfig,
};

use crate::Distributor;
use crate::translate::opencensus::to_otlp;

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

#[derive(Debug)]
pub struct OpenCensusGrpc {
    distributor: Arc<Distributor>,
    multitenancy: bool,
}

/// The tonic service of the OpenCensus receiver; `max_recv_bytes` bounds one request message.
pub fn service(
    distributor: Arc<Distributor>,
    multitenancy: bool,
    max_recv_bytes: usize,
) -> TraceServiceServer<OpenCensusGrpc> {
    TraceServiceServer::new(OpenCensusGrpc {
        distributor,
        multitenancy,
    })
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .max_decoding_message_size(max_recv_bytes)
}

#[tonic::async_trait]
impl TraceService for OpenCensusGrpc {
    type ConfigStream = Streamed<UpdatedLibraryConfig>;
    type ExportStream = Streamed<ExportTraceServiceResponse>;

    async fn config(
        &self,
        _request: tonic::Request<tonic::Streaming<CurrentLibraryConfig>>,
    ) -> Result<tonic::Response<Self::ConfigStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "vivace does not push sampling configuration to OpenCensus agents",
        ))
    }

    async fn export(
        &self,
        request: tonic::Request<tonic::Streaming<ExportTraceServiceRequest>>,
    ) -> Result<tonic::Response<Self::ExportStream>, tonic::Status> {
        let header = request
            .metadata()
            .get("x-scope-orgid")
            .map(|v| v.as_bytes().to_vec());
        let tenant = super::tenant_of(self.multitenancy, header.as_deref()).map_err(to_tonic)?;
        let mut inbound = request.into_inner();
        let distributor = self.distributor.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut last = (None, None);
            loop {
                let req = match inbound.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let size = req.encoded_len();
                let batches = match to_otlp(req, &mut last) {
                    Ok(b) => b,
                    Err(e) => {
                        distributor.refused_undecoded(tenant.as_str(), false, size);
                        let s = Status::bad_request(format!("invalid OpenCensus spans: {e}"));
                        let _ = tx.send(Err(to_tonic(s))).await;
                        return;
                    }
                };
                match distributor.push_batches(&tenant, batches, size).await {
                    Ok(_) => {
                        if tx.send(Ok(ExportTraceServiceResponse {})).await.is_err() {
                            return;
                        }
                    }
                    Err(s) => {
                        let _ = tx.send(Err(to_tonic(s))).await;
                        return;
                    }
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
