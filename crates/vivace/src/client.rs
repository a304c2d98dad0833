//! `vivace query | trace | tags | metrics`: the HTTP API from the shell, as tables for people or
//! JSON for scripts (`--json` prints the server's answer unchanged). With `-config.file` or
//! `--data-dir` they read the bucket's blocks directly through an in-process read-only query API
//! (`vivace_app::readonly`), no server running.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::Value;

/// Where and as whom to ask.
#[derive(Debug, clap::Args, Clone)]
pub(crate) struct Conn {
    /// The server's HTTP API.
    #[arg(long, env = "VIVACE_SERVER", default_value = "http://localhost:3200")]
    server: String,
    /// X-Scope-OrgID (several as `a|b` for reads across tenants).
    #[arg(long, env = "VIVACE_TENANT")]
    tenant: Option<String>,
    /// A bearer token, when the server requires authentication.
    #[arg(long, env = "VIVACE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// More request headers, `Name=value`.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    /// Read the blocks of this config's bucket directly instead of asking a server (traces
    /// not yet flushed by a running server are not seen).
    #[arg(long = "config.file")]
    config_file: Option<std::path::PathBuf>,
    /// Read the blocks under this data dir directly (with the default local bucket, or the
    /// bucket of `-config.file`).
    #[arg(long = "data-dir")]
    data_dir: Option<std::path::PathBuf>,
    /// In local mode: the blocks read, for the progress line.
    #[arg(skip)]
    local: Option<vivace_app::readonly::LocalApi>,
}

/// A time range: `--since` back from now, or `--start`/`--end` (unix seconds or RFC 3339).
#[derive(Debug, clap::Args, Clone)]
pub(crate) struct Range {
    /// How far back from now, e.g. `15m`, `1h`, `2d`.
    #[arg(long, default_value = "1h")]
    since: String,
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    end: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClientCmd {
    /// Search with TraceQL: one row per trace (ID, root service and name, start, duration,
    /// matched spans).
    Query {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        conn: Conn,
    },
    /// One trace by ID, as an indented tree of spans.
    Trace {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Attribute names, by scope (or of one scope: `resource`, `span`, `event`, `link`,
    /// `instrumentation`, `intrinsic`).
    Tags {
        scope: Option<String>,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        conn: Conn,
    },
    /// A TraceQL metrics query over the range: one row per series with its latest value.
    Metrics {
        query: String,
        /// Step, e.g. `1m` (default: the server's, about 240 points).
        #[arg(long)]
        step: Option<String>,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        conn: Conn,
    },
}

fn parse_since(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => bail!("bad duration unit in {s:?} (s, m, h, d)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl Range {
    /// `start` and `end` query parameters.
    fn params(&self) -> anyhow::Result<Vec<(String, String)>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let end = self.end.clone().unwrap_or_else(|| now.to_string());
        let start = match &self.start {
            Some(s) => s.clone(),
            None => now
                .saturating_sub(parse_since(&self.since)?.as_secs())
                .to_string(),
        };
        Ok(vec![("start".into(), start), ("end".into(), end)])
    }
}

impl Conn {
    /// In local mode, starts the read-only query API over the bucket and points at it.
    async fn resolve(&mut self) -> anyhow::Result<()> {
        if self.config_file.is_none() && self.data_dir.is_none() {
            return Ok(());
        }
        let mut cfg = match &self.config_file {
            Some(p) => vivace_app::Config::load(p, false)?,
            None => vivace_app::Config::default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        cfg.validate()?;
        let local = vivace_app::readonly::serve_blocks(&cfg).await?;
        self.server = format!("http://{}", local.addr);
        self.local = Some(local);
        Ok(())
    }

    /// [`Conn::get`] with, in local mode on a terminal, a progress line on stderr while the
    /// blocks are read.
    async fn fetch(&self, path: &str, params: &[(String, String)]) -> anyhow::Result<Value> {
        let Some(local) = self
            .local
            .filter(|_| std::io::IsTerminal::is_terminal(&std::io::stderr()))
        else {
            return self.get(path, params).await;
        };
        let started = std::time::Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                eprint!(
                    "\rreading {} blocks ({:.1} MB) of the bucket… {:.0}s",
                    local.blocks,
                    local.bytes as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
            }
        });
        let answer = self.get(path, params).await;
        ticker.abort();
        if started.elapsed() >= Duration::from_millis(500) {
            eprint!("\r\x1b[K");
        }
        answer
    }

    async fn get(&self, path: &str, params: &[(String, String)]) -> anyhow::Result<Value> {
        let client = reqwest_client::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut req = client
            .get(&url)
            .query(params)
            .header("Accept", "application/json");
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        for h in &self.headers {
            let (k, v) = h
                .split_once('=')
                .with_context(|| format!("--header {h:?}: expected Name=value"))?;
            req = req.header(k.trim(), v.trim());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body = resp.text().await?;
        if status.as_u16() == 404 {
            bail!("not found");
        }
        if !status.is_success() {
            bail!("{status}: {}", body.trim());
        }
        serde_json::from_str(&body).with_context(|| format!("answer of {url} is not JSON"))
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Nanoseconds (a JSON string or number) as RFC 3339.
fn time(v: &Value) -> String {
    let ns = match v {
        Value::String(s) => s.parse::<u64>().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Runs a client subcommand; prints to stdout.
pub(crate) fn run(cmd: ClientCmd) -> anyhow::Result<()> {
    // Like any shell tool: `vivace query … | head` ends quietly when the reader goes.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(cmd))
}

async fn run_async(cmd: ClientCmd) -> anyhow::Result<()> {
    match cmd {
        ClientCmd::Query {
            query,
            limit,
            range,
            mut conn,
        } => {
            conn.resolve().await?;
            let mut p = range.params()?;
            p.push(("q".into(), query));
            p.push(("limit".into(), limit.to_string()));
            let v = conn.fetch("/api/search", &p).await?;
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let traces = v["traces"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<32}  {:<20}  {:<28}  {:<24}  {:>10}  {:>7}",
                "TRACE ID", "ROOT SERVICE", "ROOT NAME", "START", "DURATION", "MATCHED"
            );
            for t in &traces {
                let matched: u64 = t["spanSets"]
                    .as_array()
                    .map(|ss| ss.iter().filter_map(|s| s["matched"].as_u64()).sum())
                    .or_else(|| t["spanSet"]["matched"].as_u64())
                    .unwrap_or(0);
                println!(
                    "{:<32}  {:<20}  {:<28}  {:<24}  {:>8}ms  {:>7}",
                    s(t, "traceID"),
                    s(t, "rootServiceName"),
                    s(t, "rootTraceName"),
                    time(&t["startTimeUnixNano"]),
                    t["durationMs"].as_u64().unwrap_or(0),
                    matched
                );
            }
            eprintln!("{} traces", traces.len());
        }
        ClientCmd::Trace { id, mut conn } => {
            conn.resolve().await?;
            let v = conn.fetch(&format!("/api/v2/traces/{id}"), &[]).await?;
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print_tree(&v["trace"]);
        }
        ClientCmd::Tags {
            scope,
            range,
            mut conn,
        } => {
            conn.resolve().await?;
            let mut p = range.params()?;
            if let Some(sc) = &scope {
                p.push(("scope".into(), sc.clone()));
            }
            let v = conn.fetch("/api/v2/search/tags", &p).await?;
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            for sc in v["scopes"].as_array().cloned().unwrap_or_default() {
                let mut tags: Vec<&str> = sc["tags"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                tags.sort_unstable();
                println!("{}:", s(&sc, "name"));
                for t in tags {
                    println!("  {t}");
                }
            }
        }
        ClientCmd::Metrics {
            query,
            step,
            range,
            mut conn,
        } => {
            conn.resolve().await?;
            let mut p = range.params()?;
            p.push(("q".into(), query));
            if let Some(st) = step {
                p.push(("step".into(), st));
            }
            let v = conn.fetch("/api/metrics/query_range", &p).await?;
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let series = v["series"].as_array().cloned().unwrap_or_default();
            for se in &series {
                let labels = se["promLabels"].as_str().unwrap_or("{}");
                let samples = se["samples"].as_array().cloned().unwrap_or_default();
                let last = samples.last().map(|x| match &x["value"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => "0".into(),
                });
                println!(
                    "{labels}  {} points, last {}",
                    samples.len(),
                    last.unwrap_or_else(|| "-".into())
                );
            }
            eprintln!("{} series", series.len());
        }
    }
    Ok(())
}

/// A trace (Tempo's v2 JSON) as a tree: each span under its parent with its service, duration
/// and an `!` when it failed.
fn print_tree(trace: &Value) {
    struct Row {
        id: String,
        parent: String,
        line: String,
        start: u64,
    }
    let mut rows = Vec::new();
    for rs in trace["resourceSpans"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let svc = rs["resource"]["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .unwrap_or("")
            .to_string();
        for ss in rs["scopeSpans"].as_array().cloned().unwrap_or_default() {
            for sp in ss["spans"].as_array().cloned().unwrap_or_default() {
                let n = |k: &str| match &sp[k] {
                    Value::String(s) => s.parse::<u64>().unwrap_or(0),
                    Value::Number(x) => x.as_u64().unwrap_or(0),
                    _ => 0,
                };
                let (start, end) = (n("startTimeUnixNano"), n("endTimeUnixNano"));
                let failed = sp["status"]["code"] == "STATUS_CODE_ERROR";
                rows.push(Row {
                    id: s(&sp, "spanId").to_string(),
                    parent: s(&sp, "parentSpanId").to_string(),
                    line: format!(
                        "{}{} [{svc}] {:.3}ms",
                        if failed { "! " } else { "" },
                        s(&sp, "name"),
                        end.saturating_sub(start) as f64 / 1e6
                    ),
                    start,
                });
            }
        }
    }
    rows.sort_by_key(|r| r.start);
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    fn walk(rows: &[Row], parent: &str, depth: usize, seen: &mut usize) {
        for r in rows.iter().filter(|r| r.parent == parent) {
            println!("{}{}", "  ".repeat(depth), r.line);
            *seen += 1;
            if depth < 256 {
                walk(rows, &r.id, depth + 1, seen);
            }
        }
    }
    let mut seen = 0;
    // Roots: no parent, or a parent that is not in the trace.
    for r in rows
        .iter()
        .filter(|r| r.parent.is_empty() || !ids.contains(r.parent.as_str()))
    {
        println!("{}", r.line);
        seen += 1;
        walk(&rows, &r.id, 1, &mut seen);
    }
    eprintln!("{seen} spans");
}
