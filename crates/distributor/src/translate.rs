//! Other trace protocols into OTLP, each as the OpenTelemetry Collector's receiver translates it;
//! the mapping is written at the top of each module. Pure functions: no I/O, so they are tested
//! rule by rule.

pub mod jaeger;
pub mod opencensus;
pub mod thrift;
pub mod zipkin;
