//! Starting the real `vivace` binary on free ports and a temporary data dir, and talking to it.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use vivace_proto::otlp::collector::trace_service_client::TraceServiceClient;
use vivace_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use vivace_proto::tempopb::{Trace, TraceByIdResponse};

/// A port free on 127.0.0.1 (TCP and UDP), below the kernel's ephemeral range and never the same
/// twice in this test. Not `bind(0)`: that hands out ephemeral ports, and while nobody listens on
/// one yet, a test connecting to it (polling for a server to come up) can be given that same
/// port as its own end — TCP's self-connect: the probe "answers" with its own bytes and the
/// server then cannot bind (`storage::gcs_on_fake_gcs_server` failed so, ~1 run in 6 under
/// load).
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_100));
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let port = rand::rng().random_range(low..high);
        if given.contains(&port) {
            continue;
        }
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// A running vivace process. Killed (SIGKILL) on drop if still running.
pub struct Server {
    child: Option<Child>,
    pub dir: PathBuf,
    pub http: u16,
    pub grpc: u16,
    pub otlp_http: u16,
    /// `server.grpc_listen_port`: the gRPC query API.
    pub grpc_query: u16,
    pub log: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200 now (a blocking readiness probe).
fn answers_200(port: u16, path: &str) -> bool {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    let mut buf = String::new();
    let _ = std::io::Read::read_to_string(&mut c, &mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_vivace")
}

impl Server {
    /// Writes a config with fresh ports (plus `extra` YAML appended) and starts vivace on `dir`.
    pub fn start(dir: &Path, extra: &str) -> Server {
        Server::start_with(dir, "", "", extra)
    }

    /// Like [`Server::start`], with extra environment variables for the process.
    pub fn start_env(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Server {
        Server::start_inner(dir, "", "", "", extra, env)
    }

    /// Like [`Server::start`], with extra keys for the OTLP gRPC and HTTP protocols.
    pub fn start_with(dir: &Path, grpc_keys: &str, http_keys: &str, extra: &str) -> Server {
        Server::start_inner(dir, grpc_keys, http_keys, "", extra, &[])
    }

    /// Like [`Server::start`], with more receivers (YAML under `distributor.receivers`, e.g.
    /// `zipkin:\n  endpoint: 127.0.0.1:9411`).
    pub fn start_receivers(dir: &Path, receivers: &str, extra: &str) -> Server {
        Server::start_inner(dir, "", "", receivers, extra, &[])
    }

    /// [`Server::start_receivers`] with extra environment variables for the process.
    pub fn start_env_receivers(
        dir: &Path,
        receivers: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_inner(dir, "", "", receivers, extra, env)
    }

    fn start_inner(
        dir: &Path,
        grpc_keys: &str,
        http_keys: &str,
        receivers: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Server {
        // A port picked free can be taken by another test before vivace binds it: then the
        // start is tried again on other ports (a port the test chose itself, in `receivers`
        // or `extra`, stays as it is).
        for attempt in 1.. {
            let (http, grpc, otlp_http, grpc_query) =
                (free_port(), free_port(), free_port(), free_port());
            let config = dir.join("vivace.yaml");
            let indent = |keys: &str| -> String {
                keys.lines().map(|l| format!("          {l}\n")).collect()
            };
            let (grpc_keys, http_keys) = (indent(grpc_keys), indent(http_keys));
            let receivers: String = receivers.lines().map(|l| format!("    {l}\n")).collect();
            let yaml = format!(
                "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_port: {grpc_query}\n  log_level: info\n\
                 distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:{grpc}\n{grpc_keys}        http:\n          endpoint: 127.0.0.1:{otlp_http}\n{http_keys}{receivers}{extra}"
            );
            std::fs::write(&config, yaml).unwrap();
            let mut s = Server {
                child: None,
                dir: dir.to_path_buf(),
                http,
                grpc,
                otlp_http,
                grpc_query,
                log: dir.join("vivace.log"),
                config,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            match s.start_process() {
                Ok(()) => return s,
                Err(log) if attempt < 4 && log.contains("Address already in use") => {
                    eprintln!("a picked port was taken meanwhile; starting on others");
                }
                Err(log) => panic!("vivace exited during start; log:\n{log}"),
            }
        }
        unreachable!()
    }

    /// Starts the process again with the same config and data dir, waiting until it is ready.
    pub fn restart(&mut self) {
        if let Err(log) = self.start_process() {
            panic!("vivace exited during start; log:\n{log}");
        }
    }

    /// Starts the process, waiting until it is ready; `Err(log)` when it exits first.
    fn start_process(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(binary())
            .arg(format!("-config.file={}", self.config.display()))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vivace");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if answers_200(self.http, "/ready") {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("({status})\n{}", self.log_text()));
            }
            assert!(
                Instant::now() < deadline,
                "vivace not ready in 30s; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (up to 20 s) and returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        let start = Instant::now();
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return (st, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                panic!("vivace did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http, path)
    }

    pub fn otlp_http_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.otlp_http)
    }

    pub async fn grpc_client(&self) -> TraceServiceClient<tonic::transport::Channel> {
        TraceServiceClient::connect(format!("http://127.0.0.1:{}", self.grpc))
            .await
            .expect("connect grpc")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The four read forms of a trace: v1/v2 × protobuf/JSON. `None` where the trace is not found.
pub struct TraceReads {
    pub v1_proto: Option<Trace>,
    pub v1_json: Option<serde_json::Value>,
    pub v2_proto: Option<TraceByIdResponse>,
    pub v2_json: Option<serde_json::Value>,
}

pub async fn read_trace(server: &Server, hex_id: &str, tenant_opt: Option<&str>) -> TraceReads {
    let c = http();
    let get = |path: String, proto: bool| {
        let mut r = c.get(server.api(&path));
        if proto {
            r = r.header("Accept", "application/protobuf");
        }
        if let Some(t) = tenant_opt {
            r = r.header("X-Scope-OrgID", t);
        }
        r.send()
    };
    let r = get(format!("/api/traces/{hex_id}"), true).await.unwrap();
    let v1_proto = match r.status().as_u16() {
        200 => Some(Trace::decode(r.bytes().await.unwrap()).unwrap()),
        404 => {
            assert!(r.bytes().await.unwrap().is_empty(), "404 has an empty body");
            None
        }
        s => panic!("v1 proto status {s}: {}", r.text().await.unwrap()),
    };
    let r = get(format!("/api/traces/{hex_id}"), false).await.unwrap();
    let v1_json = match r.status().as_u16() {
        200 => Some(r.json().await.unwrap()),
        404 => None,
        s => panic!("v1 json status {s}"),
    };
    let r = get(format!("/api/v2/traces/{hex_id}"), true).await.unwrap();
    let v2_proto = match r.status().as_u16() {
        200 => {
            assert_eq!(r.headers()["content-type"], "application/protobuf");
            Some(TraceByIdResponse::decode(r.bytes().await.unwrap()).unwrap())
        }
        404 => {
            assert!(r.bytes().await.unwrap().is_empty(), "404 has an empty body");
            None
        }
        s => panic!("v2 proto status {s}"),
    };
    let r = get(format!("/api/v2/traces/{hex_id}"), false)
        .await
        .unwrap();
    let v2_json = match r.status().as_u16() {
        200 => Some(r.json().await.unwrap()),
        404 => None,
        s => panic!("v2 json status {s}"),
    };
    TraceReads {
        v1_proto,
        v1_json,
        v2_proto,
        v2_json,
    }
}

/// An HTTP request whose answer is read as JSON.
pub trait JsonBody {
    /// Sends the request and reads the answer as JSON (panics on a transport or decoding error).
    fn json_body(self) -> impl std::future::Future<Output = serde_json::Value>;
}

impl JsonBody for reqwest::RequestBuilder {
    async fn json_body(self) -> serde_json::Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}
/// One OTLP export of `spans`, all from the service `service`.
pub fn service_export(
    service: &str,
    spans: Vec<vivace_proto::otlp::trace::Span>,
) -> ExportTraceServiceRequest {
    use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use vivace_proto::otlp::resource::Resource;
    use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends one OTLP protobuf request over HTTP.
pub async fn post_otlp(
    server: &Server,
    req: &ExportTraceServiceRequest,
    tenant_opt: Option<&str>,
) -> (u16, ExportTraceServiceResponse) {
    let mut r = http()
        .post(server.otlp_http_url())
        .header("Content-Type", "application/x-protobuf")
        .body(req.encode_to_vec());
    if let Some(t) = tenant_opt {
        r = r.header("X-Scope-OrgID", t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (
        status,
        ExportTraceServiceResponse::decode(body).unwrap_or_default(),
    )
}

/// What a client script reported it sent (one JSON object per span), grouped by `trace_id`.
pub fn sent_by_trace(
    sent: &[serde_json::Value],
) -> std::collections::HashMap<String, Vec<&serde_json::Value>> {
    let mut by_trace: std::collections::HashMap<String, Vec<&serde_json::Value>> =
        Default::default();
    for s in sent {
        by_trace
            .entry(s["trace_id"].as_str().unwrap().to_string())
            .or_default()
            .push(s);
    }
    by_trace
}

/// The spans of a trace read back, by span ID in hex.
pub fn spans_by_id(
    trace: &Trace,
) -> std::collections::HashMap<String, &vivace_proto::otlp::trace::Span> {
    trace
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| (hex::encode(&s.span_id), s))
        .collect()
}

/// Every block directory under a local bucket `root` (`<tenant>/<block id>/`), compacted or not.
pub fn block_dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|tenant| {
            std::fs::read_dir(tenant.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|b| b.path())
        .collect()
}

/// The Python interpreter of the test venv (set by scripts/test.sh).
pub fn python() -> String {
    installed("VIVACE_PYTHON", "the OpenTelemetry clients")
}

/// Where scripts/test.sh installed `what`, from its environment variable `var`.
pub fn installed(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test.sh, which installs {what}")
    })
}

pub fn clients_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("tests/clients")
}

/// The final message of a stream of partial answers.
pub async fn last_message<T>(stream: &mut tonic::Streaming<T>) -> T {
    let mut last = None;
    while let Some(m) = stream.message().await.expect("stream") {
        last = Some(m);
    }
    last.expect("a final message")
}

/// The error a streaming gRPC call ends with, whether the call itself or one of its messages
/// carries it.
pub async fn stream_error<T>(
    call: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> tonic::Status {
    let mut s = match call {
        Err(e) => return e,
        Ok(r) => r.into_inner(),
    };
    loop {
        match s.message().await {
            Err(e) => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without an error"),
        }
    }
}

/// A real Prometheus (`--web.enable-remote-write-receiver`) on a free port and a data dir of its
/// own, killed on drop. The binary is `VIVACE_PROMETHEUS` (set by scripts/test.sh).
pub struct Prometheus {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Prometheus {
    pub fn start(dir: &Path) -> Prometheus {
        let mut p = Prometheus {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
        )
        .unwrap();
        p.restart();
        p
    }

    /// Starts it again on the same port and data dir, waiting (up to 20 s) until ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let bin = installed("VIVACE_PROMETHEUS", "Prometheus");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("prometheus.log"))
            .unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if answers_200(self.port, "/-/ready") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 20 s:\n{}",
                std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// An instant query's result vector: (labels, value) per series.
    pub async fn query(&self, q: &str) -> Vec<(serde_json::Value, f64)> {
        let v: serde_json::Value = http()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", q)])
            .json_body()
            .await;
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let val = match &r["value"] {
                    serde_json::Value::Array(a) => a[1].as_str().unwrap().parse().unwrap(),
                    _ => f64::NAN,
                };
                (r["metric"].clone(), val)
            })
            .collect()
    }

    /// Every sample of one series selected by `selector` over the last `range`, in time order.
    pub async fn samples(&self, selector: &str, range: &str) -> Vec<f64> {
        let v: serde_json::Value = http()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", format!("{selector}[{range}]"))])
            .json_body()
            .await;
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        assert!(result.len() <= 1, "{selector} selects several series: {v}");
        result
            .first()
            .map(|r| {
                r["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[1].as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small shop trace with trace ID `[id; 16]`: `frontend` `GET /checkout` (server) → `checkout`
/// `charge` (client) → `payments` `POST /pay` (server, the slow one and failed when `slow`) plus a
/// `checkout` `SELECT cart` span. Starts 5 s before now.
pub fn shop_trace(id: u8, slow: bool) -> ExportTraceServiceRequest {
    use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use vivace_proto::otlp::resource::Resource;
    use vivace_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let t0 = now - 5_000_000_000;
    let ms = 1_000_000u64;
    let pay = if slow { 900 * ms } else { 40 * ms };
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let span = |sid: u8, parent: u8, name: &str, kind: SpanKind, start: u64, dur: u64| Span {
        trace_id: vec![id; 16],
        span_id: vec![id, 0, 0, 0, 0, 0, 0, sid],
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            vec![id, 0, 0, 0, 0, 0, 0, parent]
        },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: t0 + start,
        end_time_unix_nano: t0 + start + dur,
        attributes: vec![kv("http.route", name)],
        ..Default::default()
    };
    let service = |name: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", name)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut payment = span(4, 3, "POST /pay", SpanKind::Server, 12 * ms, pay);
    if slow {
        payment.status = Some(Status {
            code: 2,
            message: "card declined".into(),
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![
            service(
                "frontend",
                vec![span(
                    1,
                    0,
                    "GET /checkout",
                    SpanKind::Server,
                    0,
                    pay + 30 * ms,
                )],
            ),
            service(
                "checkout",
                vec![
                    span(2, 1, "SELECT cart", SpanKind::Client, 2 * ms, 5 * ms),
                    span(3, 1, "charge", SpanKind::Client, 10 * ms, pay + 5 * ms),
                ],
            ),
            service("payments", vec![payment]),
        ],
    }
}

/// The body of a GET, as text (panics on a transport error).
pub async fn get_text(url: &str) -> String {
    http().get(url).send().await.unwrap().text().await.unwrap()
}

/// A helper process (an emulator) killed on drop.
pub struct Emulator(pub Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's S3 on 127.0.0.1:`port` (not yet answering when this returns).
pub fn moto(port: u16) -> Emulator {
    Emulator(
        // As a module: the venv's console scripts name the interpreter of where it was built.
        Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (installed by scripts/test.sh)"),
    )
}
