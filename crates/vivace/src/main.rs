//! The `vivace` binary: argument parsing and subcommands only.
//!
//! `vivace` (or `vivace serve`) runs the server; `vivace gen` is the load generator;
//! `vivace traceql validate '<query>'` checks a TraceQL query; `vivace query | trace | tags |
//! metrics` ask a running server. Tempo's
//! single-dash flags (`-config.file=...`, `-config.expand-env`, `-target=all`) work as in Tempo.

mod blocks;
mod client;
mod loadgen;
mod vulture;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc: the write path allocates and frees many small objects (decoded spans, strings) on
/// every request; glibc malloc spent about 40% of the server's CPU on it under load. Built without
/// transparent huge pages (`no_thp`): with them an idle server held 10 MB more (each touched page
/// of the arena was a 2 MiB one), and under load it spent ~10% more CPU per span with a p99
/// export latency of 14 ms instead of 8 (huge-page faults and compaction).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use vivace_app::Config;

#[derive(Debug, Parser)]
#[command(
    name = "vivace",
    version,
    about = "A distributed tracing backend that speaks Tempo"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Generate realistic trace load against a running server and report throughput/latency.
    Gen(loadgen::GenArgs),
    /// TraceQL tools.
    #[command(subcommand)]
    Traceql(TraceqlCmd),
    #[command(flatten)]
    Client(client::ClientCmd),
    /// tempo-vulture's end-to-end check of a running server: writes deterministic traces and
    /// reads them back by ID, tags search, TraceQL and metrics; exports vivace_vulture_* metrics.
    Vulture(vulture::VultureArgs),
    /// A tenant's blocks in the configured bucket (no server needed).
    Blocks {
        #[command(subcommand)]
        cmd: blocks::BlocksCmd,
        #[command(flatten)]
        config: BlocksConfig,
    },
}

#[derive(Debug, Subcommand)]
enum TraceqlCmd {
    /// Parse and validate a query: print its canonical form (exit 0) or the error (exit 1).
    Validate {
        query: String,
        /// Print the syntax tree as JSON instead of the canonical form.
        #[arg(long)]
        json: bool,
    },
    /// Print how a search query runs: what is read, the conditions by scope, the stages, what
    /// results carry.
    Explain { query: String },
}

fn traceql(cmd: TraceqlCmd) -> ExitCode {
    let (query, json) = match cmd {
        TraceqlCmd::Validate { query, json } => (query, json),
        TraceqlCmd::Explain { query } => return explain(&query),
    };
    match vivace_traceql::parse(&query) {
        Ok(ast) if json => match serde_json::to_string_pretty(&ast) {
            Ok(j) => {
                println!("{j}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vivace: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(ast) => {
            println!("{ast}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("{}", e.render(&query));
            } else {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn explain(query: &str) -> ExitCode {
    let plan = vivace_traceql::parse(query)
        .map_err(|e| e.to_string())
        .and_then(|q| match &q.body {
            vivace_traceql::ast::Body::Metrics(_) => {
                // The range does not change the plan; an instant one stands for any.
                let range = vivace_traceql::metrics::Range::instant(0, 1);
                vivace_traceql::metrics::MetricsPlan::new(&q, range, 0)
                    .map(|p| p.explain(&q))
                    .map_err(|e| e.to_string())
            }
            _ => vivace_traceql::eval::SearchPlan::new(&q)
                .map(|p| p.explain(&q))
                .map_err(|e| e.to_string()),
        });
    match plan {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
struct ServeArgs {
    /// YAML configuration file (Tempo's keys).
    #[arg(long = "config.file")]
    config_file: Option<PathBuf>,
    /// Replace ${VAR} and ${VAR:-default} in the config file from the environment.
    #[arg(long = "config.expand-env", num_args = 0..=1, default_missing_value = "true")]
    expand_env: Option<bool>,
    /// Roles to run; only `all` in this version.
    #[arg(long = "target")]
    target: Option<String>,
    /// Where the write-ahead log lives (config key `data_dir`, default ./vivace-data).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Serve the MCP server at /api/mcp (config key `query_frontend.mcp_server.enabled`).
    #[arg(long = "query-frontend.mcp-server.enabled", num_args = 0..=1, default_missing_value = "true")]
    mcp_server: Option<bool>,
}

/// The server's config for `vivace blocks`, given anywhere on the line.
#[derive(Debug, Args, Clone, Default)]
struct BlocksConfig {
    /// YAML configuration file of the server (Tempo's keys).
    #[arg(long = "config.file", global = true)]
    config_file: Option<PathBuf>,
    #[arg(
        long = "config.expand-env",
        num_args = 0..=1,
        default_missing_value = "true",
        global = true
    )]
    expand_env: Option<bool>,
    /// The server's data dir (config key `data_dir`), where a local bucket lives by default.
    #[arg(long = "data-dir", global = true)]
    data_dir: Option<PathBuf>,
}

/// Turns Go-style single-dash long flags (`-config.file=x`) into clap's `--config.file=x`.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.enumerate()
        .map(|(i, a)| {
            let long_single = i > 0
                && a.starts_with('-')
                && !a.starts_with("--")
                && a.len() > 2
                && a.as_bytes()[1].is_ascii_alphabetic();
            if long_single { format!("-{a}") } else { a }
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    match cli.cmd {
        Some(Cmd::Gen(args)) => {
            init_logging("warn");
            match loadgen::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vivace gen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Cmd::Serve(args)) => serve(args),
        Some(Cmd::Vulture(args)) => {
            init_logging("warn");
            match vulture::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vivace vulture: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Cmd::Traceql(cmd)) => traceql(cmd),
        Some(Cmd::Blocks { cmd, config }) => {
            let args = ServeArgs {
                config_file: config.config_file,
                expand_env: config.expand_env,
                target: None,
                data_dir: config.data_dir,
                mcp_server: None,
            };
            let result = load_config(&args)
                .map_err(anyhow::Error::from)
                .and_then(|cfg| blocks::run(cmd, &cfg));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vivace: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Cmd::Client(cmd)) => match client::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vivace: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => serve(cli.serve),
    }
}

fn load_config(args: &ServeArgs) -> Result<Config, vivace_app::ConfigError> {
    let expand = args.expand_env.unwrap_or(false);
    let mut cfg = match &args.config_file {
        Some(path) => Config::load(path, expand)?,
        None => Config::default(),
    };
    if let Some(t) = &args.target {
        cfg.target = t.clone();
    }
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(on) = args.mcp_server {
        cfg.query_frontend
            .get_or_insert_with(Default::default)
            .mcp_server
            .enabled = on;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIVACE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},h2=warn,hyper=warn,tower=warn"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

fn serve(args: ServeArgs) -> ExitCode {
    let cfg = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vivace: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&cfg.server.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vivace: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let app = vivace_app::App::start(cfg).await?;
        app.serve(shutdown_signal()).await
    });
    // Blocking tasks still running (a sweep) must not hold the exit past the promised 5 s.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "vivace stopped with an error");
            eprintln!("vivace: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempo_style_flags() {
        let args = normalize_args(
            [
                "vivace",
                "-config.file=/x.yaml",
                "-target=all",
                "-h",
                "--data-dir",
                "d",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        assert_eq!(
            args,
            [
                "vivace",
                "--config.file=/x.yaml",
                "--target=all",
                "-h",
                "--data-dir",
                "d"
            ]
        );
        let cli = Cli::parse_from(normalize_args(
            ["vivace", "-config.file", "c.yaml", "-config.expand-env"]
                .iter()
                .map(|s| s.to_string()),
        ));
        assert_eq!(cli.serve.config_file, Some(PathBuf::from("c.yaml")));
        assert_eq!(cli.serve.expand_env, Some(true));
    }
}
