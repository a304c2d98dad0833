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

/// `distributor.receivers:` in the OpenTelemetry Collector's shape. A protocol not named is not
/// served; with no `receivers:` section at all, Tempo's default set is (OTLP gRPC, Jaeger gRPC and
/// Thrift HTTP) plus OTLP HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receivers {
    #[serde(default, deserialize_with = "present_or_default")]
    pub otlp: Option<OtlpReceiver>,
    #[serde(default, deserialize_with = "present_or_default")]
    pub jaeger: Option<JaegerReceiver>,
    #[serde(default, deserialize_with = "present_or_default")]
    pub zipkin: Option<ZipkinReceiver>,
    /// The OpenCensus agent's gRPC export stream (Tempo 2.x; default `0.0.0.0:55678`).
    #[serde(default, deserialize_with = "present_or_default")]
    pub opencensus: Option<OpenCensusReceiver>,
    #[serde(default)]
    pub kafka: Option<serde_yaml_ng::Value>,
}

impl Default for Receivers {
    fn default() -> Self {
        Receivers {
            otlp: Some(OtlpReceiver::default()),
            jaeger: Some(JaegerReceiver {
                protocols: JaegerProtocols {
                    grpc: Some(Endpoint::default()),
                    thrift_http: Some(Endpoint::default()),
                    thrift_compact: None,
                    thrift_binary: None,
                },
                remote_sampling: None,
            }),
            zipkin: None,
            opencensus: None,
            kafka: None,
        }
    }
}

/// `opencensus:` (the Collector's OpenCensus receiver).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenCensusReceiver {
    pub endpoint: String,
    /// Largest request message in MiB (4).
    pub max_recv_msg_size_mib: usize,
    pub tls: Option<serde_yaml_ng::Value>,
    pub keepalive: Option<serde_yaml_ng::Value>,
    pub cors_allowed_origins: Option<serde_yaml_ng::Value>,
    pub include_metadata: Option<bool>,
}

impl Default for OpenCensusReceiver {
    fn default() -> Self {
        OpenCensusReceiver {
            endpoint: "0.0.0.0:55678".into(),
            max_recv_msg_size_mib: 4,
            tls: None,
            keepalive: None,
            cors_allowed_origins: None,
            include_metadata: None,
        }
    }
}

/// `jaeger:` (the Collector's Jaeger receiver): each protocol present is served.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JaegerReceiver {
    pub protocols: JaegerProtocols,
    pub remote_sampling: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JaegerProtocols {
    /// `jaeger.api_v2.CollectorService` (default `0.0.0.0:14250`).
    #[serde(deserialize_with = "present_or_default_with", default)]
    pub grpc: Option<Endpoint>,
    /// `POST /api/traces` with Thrift binary (default `0.0.0.0:14268`).
    #[serde(deserialize_with = "present_or_default_with", default)]
    pub thrift_http: Option<Endpoint>,
    /// Agent UDP, Thrift compact (default `0.0.0.0:6831`).
    #[serde(deserialize_with = "present_or_default_with", default)]
    pub thrift_compact: Option<UdpEndpoint>,
    /// Agent UDP, Thrift binary (default `0.0.0.0:6832`).
    #[serde(deserialize_with = "present_or_default_with", default)]
    pub thrift_binary: Option<UdpEndpoint>,
}

fn present_or_default_with<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    present_or_default(d)
}

impl JaegerProtocols {
    /// The listen addresses, defaults filled in: (gRPC, Thrift HTTP, compact UDP, binary UDP).
    pub fn addresses(&self) -> [Option<String>; 4] {
        let or = |e: &str, port: u16| {
            if e.is_empty() {
                format!("0.0.0.0:{port}")
            } else {
                e.to_string()
            }
        };
        [
            self.grpc.as_ref().map(|e| or(&e.endpoint, 14250)),
            self.thrift_http.as_ref().map(|e| or(&e.endpoint, 14268)),
            self.thrift_compact.as_ref().map(|e| or(&e.endpoint, 6831)),
            self.thrift_binary.as_ref().map(|e| or(&e.endpoint, 6832)),
        ]
    }
}

/// A TCP protocol's listen address (empty: the protocol's default port on every interface) and
/// body limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    pub endpoint: String,
    /// Largest request body in bytes, compressed and after decompression (20 MiB).
    pub max_request_body_size: usize,
    pub max_recv_msg_size_mib: Option<usize>,
    pub tls: Option<serde_yaml_ng::Value>,
    pub keepalive: Option<serde_yaml_ng::Value>,
    pub include_metadata: Option<bool>,
    pub cors: Option<serde_yaml_ng::Value>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            endpoint: String::new(),
            max_request_body_size: 20 << 20,
            max_recv_msg_size_mib: None,
            tls: None,
            keepalive: None,
            include_metadata: None,
            cors: None,
        }
    }
}

/// A UDP agent protocol: listen address (empty: the default port) and the tenant its spans go to
/// (UDP carries no header).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpEndpoint {
    pub endpoint: String,
    /// vivace: the tenant of every span received here when multitenancy is on
    /// (default `single-tenant`).
    pub tenant: String,
    pub queue_size: Option<serde_yaml_ng::Value>,
    pub max_packet_size: Option<serde_yaml_ng::Value>,
    pub workers: Option<serde_yaml_ng::Value>,
    /// The socket's receive buffer in bytes (default 4 MiB, capped by the kernel's
    /// `net.core.rmem_max`): a burst of datagrams beyond it is dropped by the kernel.
    pub socket_buffer_size: Option<usize>,
}

impl Default for UdpEndpoint {
    fn default() -> Self {
        UdpEndpoint {
            endpoint: String::new(),
            tenant: "single-tenant".into(),
            queue_size: None,
            max_packet_size: None,
            workers: None,
            socket_buffer_size: None,
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
