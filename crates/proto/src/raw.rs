//! The OTLP trace gRPC service with its request undecoded.
//!
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` as
//! [`trace_service_server::TraceService`], generated with tonic's manual builder: the request
//! arrives as the protobuf bytes of its `ExportTraceServiceRequest` (a slice of tonic's receive
//! buffer, no copy) for the distributor to read without decoding it into messages; the answer
//! is the usual `ExportTraceServiceResponse`.

use std::marker::PhantomData;

use prost::bytes::{Buf, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

include!(concat!(
    env!("OUT_DIR"),
    "/opentelemetry.proto.collector.trace.v1.TraceService.rs"
));

/// Decodes a message as its bytes; encodes `E` with prost (tonic-prost's encoder).
#[derive(Debug, Clone, Copy)]
pub struct RawCodec<E>(PhantomData<E>);

impl<E> Default for RawCodec<E> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

impl<E: prost::Message + Send + 'static> Codec for RawCodec<E> {
    type Encode = E;
    type Decode = Bytes;
    type Encoder = ProstEncoder<E>;
    type Decoder = RawCodec<E>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec(PhantomData)
    }
}

impl<E> Decoder for RawCodec<E> {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
