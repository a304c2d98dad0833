//! `vivace gen`: a load generator of realistic OTLP traffic, and the write-path benchmark.
//!
//! Traces are synthesised once from a fixed seed (several services; HTTP server/client, DB and
//! RPC span shapes with their usual attributes; 5–50 spans per trace; errors at a set ratio),
//! encoded into a pool of OTLP requests, and replayed: each send copies a template and rewrites
//! its trace IDs in place (every trace is new to the server), so the generator spends its CPU on
//! sending, not on encoding. Requests are scheduled open-loop at `--rate` spans/s (0 = as fast
//! as the server acknowledges) by `--concurrency` workers.
//!
//! It prints spans/s, export latency p50/p99/max and, with `--pid`, the server's CPU time per
//! span and its RSS (peak sampled every 100 ms).

mod synth;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;

use synth::Template;

#[derive(Debug, clap::Args)]
pub(crate) struct GenArgs {
    /// `grpc` or `http` (OTLP), `zipkin` (v2 JSON), `jaeger-thrift` (HTTP `/api/traces`),
    /// `jaeger-grpc`, `jaeger-udp` (agent datagrams, unacknowledged), `opencensus`: the same
    /// traces in each protocol.
    #[arg(long, default_value = "grpc")]
    protocol: String,
    /// Server address; default the protocol's port on 127.0.0.1 (4317, 4318, 9411, 14268,
    /// 14250, 6831, 55678).
    #[arg(long)]
    endpoint: Option<String>,
    /// Target spans per second; 0 sends as fast as acknowledgements come back.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send, e.g. 30s.
    #[arg(long, default_value = "20s", value_parser = humantime_duration)]
    duration: Duration,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Spans per request (whole traces are added until this is reached).
    #[arg(long, default_value_t = 1000)]
    batch_spans: usize,
    /// Distinct pre-encoded requests replayed (each with fresh trace IDs on every send).
    #[arg(long, default_value_t = 64)]
    templates: usize,
    /// Fraction of traces with an error span.
    #[arg(long, default_value_t = 0.05)]
    error_ratio: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// X-Scope-OrgID to send.
    #[arg(long)]
    tenant: Option<String>,
    /// PID of the server, to report its CPU per span and RSS.
    #[arg(long)]
    pid: Option<u32>,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) fn run(args: GenArgs) -> anyhow::Result<()> {
    let Some(wire) = wire::Wire::parse(&args.protocol) else {
        bail!(
            "--protocol must be grpc, http, zipkin, jaeger-thrift, jaeger-grpc, jaeger-udp or opencensus"
        );
    };
    let started = Instant::now();
    let templates = wire::convert(
        synth::templates(
            args.seed,
            args.templates,
            args.batch_spans,
            args.error_ratio,
        ),
        wire,
    );
    let spans_per_template: Vec<u64> = templates.iter().map(|t| t.spans as u64).collect();
    let bytes: usize = templates.iter().map(|t| t.encoded.len()).sum();
    let spans: u64 = spans_per_template.iter().sum();
    eprintln!(
        "vivace gen: {} templates, {} spans, {:.0} B/span encoded, built in {:.1}s",
        templates.len(),
        spans,
        bytes as f64 / spans as f64,
        started.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(drive(args, Arc::new(templates)))
}

struct Shared {
    templates: Arc<Vec<Template>>,
    next: AtomicU64,
    start: Instant,
    end: Instant,
    /// Nanoseconds between requests at the target rate (0 = unpaced).
    interval_nanos: u64,
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    spans: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn drive(args: GenArgs, templates: Arc<Vec<Template>>) -> anyhow::Result<()> {
    let avg_spans =
        templates.iter().map(|t| t.spans).sum::<usize>() as f64 / templates.len() as f64;
    let interval_nanos = if args.rate == 0 {
        0
    } else {
        (avg_spans / args.rate as f64 * 1e9) as u64
    };
    let start = Instant::now();
    let shared = Arc::new(Shared {
        templates,
        next: AtomicU64::new(0),
        start,
        end: start + args.duration,
        interval_nanos,
    });
    let wire = wire::Wire::parse(&args.protocol).context("unknown protocol")?;
    let sender = synth::Sender::new(wire, args.endpoint.clone(), args.tenant.clone()).await?;
    let cpu_before = args.pid.map(proc_cpu_seconds).transpose()?;
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = args.pid.map(|pid| {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(rss) = proc_rss_bytes(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let shared = shared.clone();
        let sender = sender.clone();
        workers.push(tokio::spawn(async move { worker(shared, sender).await }));
    }
    let mut total = WorkerStats::default();
    for w in workers {
        let s = w.await?;
        total.latencies_us.extend(s.latencies_us);
        total.spans += s.spans;
        total.errors += s.errors;
        total.first_error = total.first_error.or(s.first_error);
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(s) = sampler {
        s.abort();
    }
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((total.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, total.latencies_us.len())
            - 1;
        total.latencies_us[i] as f64 / 1000.0
    };
    println!(
        "setup: protocol={} rate={} concurrency={} batch_spans={} duration={:.1}s seed={}",
        args.protocol,
        if args.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", args.rate)
        },
        args.concurrency,
        args.batch_spans,
        elapsed,
        args.seed
    );
    println!(
        "sent: {} spans acknowledged in {} requests, {} failed requests",
        total.spans,
        total.latencies_us.len(),
        total.errors
    );
    println!("throughput: {:.0} spans/s", total.spans as f64 / elapsed);
    println!(
        "export latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    if let (Some(pid), Some(before)) = (args.pid, cpu_before) {
        let cpu = proc_cpu_seconds(pid)? - before;
        let rss = proc_rss_bytes(pid)?;
        println!(
            "server: {:.2} CPU-s, {:.2} µs CPU/span, {:.0} spans per CPU-second, RSS now {:.1} MB, peak {:.1} MB",
            cpu,
            cpu * 1e6 / total.spans.max(1) as f64,
            total.spans as f64 / cpu.max(1e-9),
            rss as f64 / 1e6,
            peak_rss.load(Ordering::Relaxed).max(rss) as f64 / 1e6
        );
    }
    if let Some(e) = total.first_error {
        eprintln!("first error: {e}");
    }
    if total.spans == 0 {
        bail!("no request was acknowledged");
    }
    Ok(())
}

async fn worker(shared: Arc<Shared>, sender: synth::Sender) -> WorkerStats {
    let mut stats = WorkerStats::default();
    loop {
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        if shared.interval_nanos > 0 {
            let due = shared.start + Duration::from_nanos(k * shared.interval_nanos);
            if due >= shared.end {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        } else if Instant::now() >= shared.end {
            break;
        }
        let t = &shared.templates[(k % shared.templates.len() as u64) as usize];
        let body: Bytes = t.with_fresh_ids(k);
        let sent = Instant::now();
        match sender.send(body).await {
            Ok(()) => {
                stats
                    .latencies_us
                    .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                stats.spans += t.spans as u64;
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e.to_string());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

fn proc_stat(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    Ok(rest.split_whitespace().map(String::from).collect())
}

fn proc_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let f = proc_stat(pid)?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((n(11) + n(12)) / tick.max(1.0))
}

fn proc_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let f = proc_stat(pid)?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Ok(f.get(21).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * page)
}
