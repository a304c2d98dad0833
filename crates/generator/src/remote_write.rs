//! Prometheus remote write 1.0: `prometheus.WriteRequest` protobuf, snappy block compression,
//! POST with retries and backoff, one bounded queue per endpoint.
//!
//! Protocol (`prometheus/prompb/remote.proto`, `types.proto`):
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//!                        repeated Exemplar exemplars = 3; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }      // ms
//! message Exemplar     { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
//! ```
//!
//! Headers: `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`. A 2xx is success; 5xx, 429 and connection errors
//! are retried with exponential backoff (`min_backoff` … `max_backoff`); any other 4xx is final
//! (the samples are dropped and counted with reason `rejected`). When a collection waits while
//! `capacity` newer ones are queued, the oldest is dropped (reason `queue_full`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prost::Message;
use tokio::sync::{Notify, watch};
use vivace_queue::{Offset, Queue};

use crate::config::RemoteWriteConfig;
use crate::error::{Error, Result};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Label {
    pub fn new(name: &str, value: &str) -> Label {
        Label {
            name: name.to_string(),
            value: value.to_string(),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// The snappy-compressed protobuf body of a write request.
pub fn encode(req: &WriteRequest) -> Bytes {
    let raw = req.encode_to_vec();
    let mut enc = snap::raw::Encoder::new();
    Bytes::from(
        enc.compress_vec(&raw)
            .expect("snappy block compression of a Vec cannot fail"),
    )
}

/// One tenant's samples of one collection.
#[derive(Debug, Clone)]
pub struct TenantWrite {
    pub tenant: String,
    /// Headers from the tenant's overrides (`remote_write_headers`).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub samples: u64,
}

/// Every tenant's samples of one collection, and the queue offset below which every record was
/// counted in them.
#[derive(Debug, Clone)]
pub struct Collection {
    pub offset: Offset,
    pub writes: Vec<TenantWrite>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    pub endpoint: String,
    pub reason: String,
}

/// Counters of the remote-write senders.
#[derive(Debug, Clone, Default)]
pub struct SenderMetrics {
    pub samples_sent: Family<EndpointLabel, Counter>,
    pub samples_dropped: Family<DropLabel, Counter>,
    pub requests_failed: Family<EndpointLabel, Counter>,
}

impl SenderMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vivace_generator_remote_write_samples_sent",
            "Samples the metrics generator delivered by remote write",
            self.samples_sent.clone(),
        );
        r.register(
            "vivace_generator_remote_write_samples_dropped",
            "Samples the metrics generator gave up on, by reason (rejected, queue_full)",
            self.samples_dropped.clone(),
        );
        r.register(
            "vivace_generator_remote_write_failed_requests",
            "Remote-write attempts that failed and were retried",
            self.requests_failed.clone(),
        );
    }
}

/// One endpoint's queue and the offset of what it finished (sent or dropped).
#[derive(Debug)]
struct Endpoint {
    cfg: RemoteWriteConfig,
    name: String,
    queue: Mutex<VecDeque<Arc<Collection>>>,
    wake: Notify,
    done: watch::Sender<Option<Offset>>,
}

/// Commits the generator's offset in the queue as soon as every endpoint has finished a
/// collection (a crash between delivery and commit re-counts at most that one collection).
#[derive(Debug)]
struct Committer {
    queue: Arc<dyn Queue>,
    consumer: &'static str,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    committed: tokio::sync::Mutex<Offset>,
}

impl Committer {
    fn done(&self) -> Option<Offset> {
        self.endpoints
            .lock()
            .iter()
            .map(|e| *e.done.borrow())
            .try_fold(Offset(u64::MAX), |m, d| d.map(|d| m.min(d)))
    }

    async fn commit(&self) {
        let mut committed = self.committed.lock().await;
        if let Some(done) = self.done()
            && done > *committed
        {
            match self.queue.commit(self.consumer, done).await {
                Ok(_) => *committed = done,
                Err(e) => tracing::error!(error = %e, "metrics generator: queue commit failed"),
            }
        }
    }
}

/// The senders of every configured endpoint.
#[derive(Debug, Clone)]
pub struct Senders {
    endpoints: Vec<Arc<Endpoint>>,
    committer: Arc<Committer>,
    metrics: SenderMetrics,
}

impl Senders {
    /// Starts one sender task per endpoint; what they finish is committed as `consumer` in
    /// `queue`, whose commit so far is `from`.
    pub fn start(
        cfgs: &[RemoteWriteConfig],
        add_org_id: bool,
        metrics: SenderMetrics,
        queue: Arc<dyn Queue>,
        consumer: &'static str,
        from: Offset,
    ) -> Result<Senders> {
        let committer = Arc::new(Committer {
            queue,
            consumer,
            endpoints: Mutex::new(Vec::new()),
            committed: tokio::sync::Mutex::new(from),
        });
        let mut endpoints = Vec::new();
        for (i, cfg) in cfgs.iter().enumerate() {
            let key = format!("metrics_generator.storage.remote_write[{i}]");
            let url = reqwest::Url::parse(&cfg.url)
                .map_err(|e| Error::invalid(format!("{key}.url"), e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Error::invalid(
                    format!("{key}.url"),
                    format!("scheme {} is neither http nor https", url.scheme()),
                ));
            }
            let name = if cfg.name.is_empty() {
                format!("{}{}", url.host_str().unwrap_or(""), url.path())
            } else {
                cfg.name.clone()
            };
            let auth = auth_header(cfg, &key)?;
            let ep = Arc::new(Endpoint {
                cfg: cfg.clone(),
                name,
                queue: Mutex::new(VecDeque::new()),
                wake: Notify::new(),
                done: watch::channel(None).0,
            });
            let client = reqwest::Client::builder()
                .timeout(cfg.remote_timeout)
                .build()?;
            endpoints.push((ep, client, url, auth));
        }
        *committer.endpoints.lock() = endpoints.iter().map(|e| e.0.clone()).collect();
        let mut eps = Vec::new();
        for (ep, client, url, auth) in endpoints {
            tokio::spawn(send_loop(
                ep.clone(),
                client,
                url,
                auth,
                add_org_id,
                metrics.clone(),
                committer.clone(),
            ));
            eps.push(ep);
        }
        Ok(Senders {
            endpoints: eps,
            committer,
            metrics,
        })
    }

    /// Queues a collection on every endpoint, dropping the oldest waiting past capacity.
    pub fn push(&self, c: Collection) {
        let c = Arc::new(c);
        for ep in &self.endpoints {
            let dropped = {
                let mut q = ep.queue.lock();
                q.push_back(c.clone());
                let cap = ep.cfg.queue_config.capacity.max(1);
                if q.len() > cap { q.pop_front() } else { None }
            };
            if let Some(old) = dropped {
                let samples: u64 = old.writes.iter().map(|w| w.samples).sum();
                tracing::warn!(
                    endpoint = ep.name,
                    samples,
                    "remote-write queue full; dropping the oldest collection"
                );
                self.metrics
                    .samples_dropped
                    .get_or_create(&DropLabel {
                        endpoint: ep.name.clone(),
                        reason: "queue_full".into(),
                    })
                    .inc_by(samples);
                ep.done.send_replace(Some(old.offset));
            }
            ep.wake.notify_one();
        }
    }

    /// Commits what every endpoint finished (sent or deliberately dropped), if that moved.
    pub async fn commit(&self) {
        self.committer.commit().await
    }

    /// Collections still waiting on any endpoint.
    pub fn pending(&self) -> usize {
        self.endpoints.iter().map(|e| e.queue.lock().len()).sum()
    }
}

fn read_secret(
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
    key: &str,
) -> Result<Option<String>> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.clone())),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|source| Error::Secret {
                key: key.to_string(),
                path: f.clone(),
                source,
            }),
        (None, None) => Ok(None),
    }
}

/// The `Authorization` header of an endpoint, if it has credentials.
fn auth_header(cfg: &RemoteWriteConfig, key: &str) -> Result<Option<String>> {
    if let Some(b) = &cfg.basic_auth {
        use base64::Engine;
        let pass = read_secret(&b.password, &b.password_file, &format!("{key}.basic_auth"))?
            .unwrap_or_default();
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{pass}", b.username));
        return Ok(Some(format!("Basic {token}")));
    }
    if let Some(a) = &cfg.authorization {
        let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
        if let Some(c) = read_secret(
            &a.credentials,
            &a.credentials_file,
            &format!("{key}.authorization"),
        )? {
            return Ok(Some(format!("{kind} {c}")));
        }
    }
    Ok(read_secret(&cfg.bearer_token, &cfg.bearer_token_file, key)?.map(|t| format!("Bearer {t}")))
}

enum Attempt {
    Sent,
    Retry(String),
    Rejected(String),
}

async fn send_one(
    client: &reqwest::Client,
    url: &reqwest::Url,
    auth: &Option<String>,
    add_org_id: bool,
    ep: &Endpoint,
    w: &TenantWrite,
) -> Attempt {
    let mut req = client
        .post(url.clone())
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("User-Agent", concat!("vivace/", env!("CARGO_PKG_VERSION")));
    if add_org_id {
        req = req.header("X-Scope-OrgID", &w.tenant);
    }
    for (k, v) in ep
        .cfg
        .headers
        .iter()
        .chain(w.headers.iter().map(|(k, v)| (k, v)))
    {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(a) = auth {
        req = req.header("Authorization", a.as_str());
    }
    match req.body(w.body.clone()).send().await {
        Ok(resp) if resp.status().is_success() => Attempt::Sent,
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let msg = format!("{status}: {}", body.trim());
            if status.is_server_error() || status.as_u16() == 429 {
                Attempt::Retry(msg)
            } else {
                Attempt::Rejected(msg)
            }
        }
        Err(e) => Attempt::Retry(e.to_string()),
    }
}

async fn send_loop(
    ep: Arc<Endpoint>,
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Option<String>,
    add_org_id: bool,
    metrics: SenderMetrics,
    committer: Arc<Committer>,
) {
    let label = EndpointLabel {
        endpoint: ep.name.clone(),
    };
    loop {
        let next = ep.queue.lock().front().cloned();
        let Some(c) = next else {
            ep.wake.notified().await;
            continue;
        };
        let mut backoff = ep.cfg.queue_config.min_backoff;
        let mut i = 0;
        while i < c.writes.len() {
            // Dropped from the queue while this was retrying: move on.
            if !ep.queue.lock().front().is_some_and(|f| Arc::ptr_eq(f, &c)) {
                break;
            }
            let w = &c.writes[i];
            match send_one(&client, &url, &auth, add_org_id, &ep, w).await {
                Attempt::Sent => {
                    metrics.samples_sent.get_or_create(&label).inc_by(w.samples);
                    backoff = ep.cfg.queue_config.min_backoff;
                    i += 1;
                }
                Attempt::Rejected(msg) => {
                    tracing::error!(
                        endpoint = ep.name,
                        tenant = w.tenant,
                        error = msg,
                        "remote write rejected; dropping these samples"
                    );
                    metrics
                        .samples_dropped
                        .get_or_create(&DropLabel {
                            endpoint: ep.name.clone(),
                            reason: "rejected".into(),
                        })
                        .inc_by(w.samples);
                    i += 1;
                }
                Attempt::Retry(msg) => {
                    metrics.requests_failed.get_or_create(&label).inc();
                    tracing::warn!(endpoint = ep.name, tenant = w.tenant, error = msg, retry_in = ?backoff, "remote write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(
                        ep.cfg
                            .queue_config
                            .max_backoff
                            .max(Duration::from_millis(1)),
                    );
                }
            }
        }
        {
            let mut q = ep.queue.lock();
            if q.front().is_some_and(|f| Arc::ptr_eq(f, &c)) {
                q.pop_front();
                ep.done.send_replace(Some(c.offset));
            }
        }
        committer.commit().await;
    }
}
