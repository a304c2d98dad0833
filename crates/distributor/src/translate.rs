//! Other trace protocols into OTLP, each as the OpenTelemetry Collector's receiver translates it;
//! the mapping is written at the top of each module. Pure functions: no I/O, so they are tested
//! rule by rule.

pub mod jaeger;
pub mod opencensus;
pub mod thrift;
pub mod zipkin;

use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};

/// An OTLP attribute.
fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// An OTLP string attribute.
fn string(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
