use std::time::Duration;

use serde::Deserialize;

/// `distributor:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub receivers: Receivers,
    /// Attribute keys and string values longer than this many bytes are truncated (Tempo 2048;
    /// 0 disables). A tenant's `ingestion.max_attribute_bytes` takes precedence.
    pub max_attribute_bytes: usize,
    /// The retry delay sent with RESOURCE_EXHAUSTED / 429 answers (Tempo 5s).
    #[serde(with = "humantime_serde")]
    pub retry_after_on_resource_exhausted: Duration,
    /// Tempo keys accepted and ignored (with a warning) by vivace.
    pub log_received_spans: Option<serde_yaml_ng::Value>,
    pub log_discarded_spans: Option<serde_yaml_ng::Value>,
    pub forwarders: Option<serde_yaml_ng::Value>,
    pub usage: Option<serde_yaml_ng::Value>,
    pub ring: Option<serde_yaml_ng::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            receivers: Receivers::default(),
            max_attribute_bytes: 2048,
            retry_after_on_resource_exhausted: Duration::from_secs(5),
            log_received_spans: None,
            log_discarded_spans: None,
            forwarders: None,
            usage: None,
            ring: None,
        }
    }
}

impl Config {
    /// Names of Tempo keys that were set but have no effect in vivace.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let keys = [
            (
                "distributor.log_received_spans",
                self.log_received_spans.is_some(),
            ),
            (
                "distributor.log_discarded_spans",
                self.log_discarded_spans.is_some(),
            ),
            ("distributor.forwarders", self.forwarders.is_some()),
            ("distributor.usage", self.usage.is_some()),
            ("distributor.ring", self.ring.is_some()),
            (
                "distributor.receivers.jaeger",
                self.receivers.jaeger.is_some(),
            ),
            (
                "distributor.receivers.kafka",
                self.receivers.kafka.is_some(),
            ),
        ];
        for (k, set) in keys {
            if set {
                v.push(k);
            }
        }
        v
    }
}

/// `distributor.receivers:` in the OpenTelemetry Collector's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Receivers {
    pub otlp: Option<OtlpReceiver>,
    pub jaeger: Option<serde_yaml_ng::Value>,
    #[serde(deserialize_with = "present_or_default")]
    pub zipkin: Option<ZipkinReceiver>,
    pub kafka: Option<serde_yaml_ng::Value>,
}

impl Default for Receivers {
    fn default() -> Self {
        Receivers {
            otlp: Some(OtlpReceiver::default()),
            jaeger: None,
            zipkin: None,
            kafka: None,
        }
    }
}

/// `zipkin:` (the Collector's Zipkin receiver): served only when present.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZipkinReceiver {
    /// Listen address, `host:port` (default `0.0.0.0:9411`).
    pub endpoint: String,
    /// Tag values that look like booleans or numbers become typed attributes (default false:
    /// every tag is a string attribute).
    pub parse_string_tags: bool,
    /// Largest request body in bytes, compressed and after decompression (20 MiB).
    pub max_request_body_size: usize,
    pub include_metadata: Option<bool>,
    pub cors: Option<serde_yaml_ng::Value>,
    pub tls: Option<serde_yaml_ng::Value>,
}

impl Default for ZipkinReceiver {
    fn default() -> Self {
        ZipkinReceiver {
            endpoint: "0.0.0.0:9411".into(),
            parse_string_tags: false,
            max_request_body_size: 20 << 20,
            include_metadata: None,
            cors: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpReceiver {
    pub protocols: OtlpProtocols,
}

impl Default for OtlpReceiver {
    fn default() -> Self {
        OtlpReceiver {
            protocols: OtlpProtocols {
                grpc: Some(GrpcProtocol::default()),
                http: Some(HttpProtocol::default()),
            },
        }
    }
}

/// A protocol left out (or `null`) is not served. `grpc:` with no fields serves the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpProtocols {
    #[serde(deserialize_with = "present_or_default")]
    pub grpc: Option<GrpcProtocol>,
    #[serde(deserialize_with = "present_or_default")]
    pub http: Option<HttpProtocol>,
}

/// `grpc:` written with no value (YAML null) means "enabled with defaults", as in the Collector.
fn present_or_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcProtocol {
    /// Listen address, `host:port` (default `0.0.0.0:4317`).
    pub endpoint: String,
    /// Largest request message in MiB, after decompression (Collector default 4).
    pub max_recv_msg_size_mib: usize,
    pub max_concurrent_streams: Option<u32>,
    pub include_metadata: Option<bool>,
    pub keepalive: Option<serde_yaml_ng::Value>,
    pub tls: Option<serde_yaml_ng::Value>,
}

impl Default for GrpcProtocol {
    fn default() -> Self {
        GrpcProtocol {
            endpoint: "0.0.0.0:4317".into(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: None,
            include_metadata: None,
            keepalive: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpProtocol {
    /// Listen address, `host:port` (default `0.0.0.0:4318`).
    pub endpoint: String,
    /// Largest request body in bytes, compressed and after decompression (Collector default
    /// 20 MiB). A larger body is answered 413 without being read further.
    pub max_request_body_size: usize,
    pub include_metadata: Option<bool>,
    pub cors: Option<serde_yaml_ng::Value>,
    pub tls: Option<serde_yaml_ng::Value>,
}

impl Default for HttpProtocol {
    fn default() -> Self {
        HttpProtocol {
            endpoint: "0.0.0.0:4318".into(),
            max_request_body_size: 20 << 20,
            include_metadata: None,
            cors: None,
            tls: None,
        }
    }
}
