//! `vivace blocks list | inspect | verify`: a tenant's blocks read straight from the bucket
//! configured for the server (local disk, S3, GCS or Azure); no server needs to run.

use anyhow::{Context, bail};
use vivace_app::Config;
use vivace_block::{BlockMeta, Bloom, shard_for};
use vivace_store::BlockList;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BlocksCmd {
    /// The tenant's blocks: ID, compaction level, traces, row groups, size, time range, version
    /// and dedicated columns (each distinct set listed once below the table).
    List { tenant: String },
    /// One block's meta.json.
    Inspect { tenant: String, block: String },
    /// Reads a block end to end: every trace decodes, trace IDs are sorted and unique, their
    /// count matches meta.json, and each is in its bloom shard.
    Verify { tenant: String, block: String },
}

async fn meta(
    backend: &vivace_store::Backend,
    tenant: &str,
    block: &str,
) -> anyhow::Result<BlockMeta> {
    let key = format!("{tenant}/{block}/meta.json");
    let bytes = backend
        .get(&key)
        .await
        .with_context(|| format!("reading {key}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{key} is not a block meta"))
}

pub(crate) fn run(cmd: BlocksCmd, cfg: &Config) -> anyhow::Result<()> {
    let backend = cfg.backend()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            BlocksCmd::List { tenant } => {
                let list = vivace_store::poll(&backend, &BlockList::default(), false).await?;
                let mut blocks: Vec<_> = list.blocks(&tenant).iter().collect();
                blocks.sort_by(|a, b| a.meta.start_time.cmp(&b.meta.start_time));
                println!(
                    "{:<36}  {:>5}  {:>9}  {:>6}  {:>12}  {:<20}  {:<20}  {:<9}  {:<9}",
                    "BLOCK",
                    "LEVEL",
                    "TRACES",
                    "GROUPS",
                    "BYTES",
                    "START",
                    "END",
                    "VERSION",
                    "DEDICATED"
                );
                // Blocks usually share one set of dedicated columns: name each set once.
                let mut sets: Vec<&Vec<vivace_block::DedicatedColumn>> = Vec::new();
                for b in &blocks {
                    let m = &b.meta;
                    let cols = &m.dedicated_columns;
                    let set = match sets.iter().position(|s| *s == cols) {
                        Some(i) => i,
                        None => {
                            sets.push(cols);
                            sets.len() - 1
                        }
                    };
                    println!(
                        "{:<36}  {:>5}  {:>9}  {:>6}  {:>12}  {:<20}  {:<20}  {:<9}  {:<9}",
                        m.block_id,
                        m.compaction_level,
                        m.total_objects,
                        m.total_records,
                        m.size,
                        m.start_time,
                        m.end_time,
                        m.format,
                        format!("{} (#{})", cols.len(), set + 1)
                    );
                }
                for (i, set) in sets.iter().enumerate() {
                    println!("dedicated columns #{}:", i + 1);
                    for c in *set {
                        println!(
                            "  {:<9} {:<7} {}",
                            if c.scope.is_empty() { "span" } else { &c.scope },
                            if c.kind.is_empty() { "string" } else { &c.kind },
                            c.name
                        );
                    }
                }
                let compacted = list.compacted.get(&tenant).map_or(0, Vec::len);
                eprintln!(
                    "{} blocks, {} traces, {} bytes; {compacted} compacted awaiting deletion",
                    blocks.len(),
                    blocks.iter().map(|b| b.meta.total_objects).sum::<u64>(),
                    blocks.iter().map(|b| b.meta.size).sum::<u64>()
                );
            }
            BlocksCmd::Inspect { tenant, block } => {
                let m = meta(&backend, &tenant, &block).await?;
                println!("{}", serde_json::to_string_pretty(&m)?);
            }
            BlocksCmd::Verify { tenant, block } => {
                let m = meta(&backend, &tenant, &block).await?;
                let key = format!("{tenant}/{block}/data.parquet");
                let progress = Progress::new();
                progress.step(&format!("reading {key} ({} bytes)", m.size));
                let data = backend
                    .get(&key)
                    .await
                    .with_context(|| format!("reading {key}"))?;
                progress.step(&format!("decoding {} traces", m.total_objects));
                let (m2, k2) = (m.clone(), key.clone());
                let traces = tokio::task::spawn_blocking(move || {
                    vivace_block::read_all_traces(data, &m2, &k2)
                })
                .await??;
                progress.step(&format!(
                    "checking order, count and {} bloom shards",
                    m.bloom_shard_count()
                ));
                let mut problems = Vec::new();
                if traces.len() as u64 != m.total_objects {
                    problems.push(format!(
                        "{} traces in data.parquet, meta.json says {}",
                        traces.len(),
                        m.total_objects
                    ));
                }
                if let Some(w) = traces.windows(2).find(|w| w[0].0 >= w[1].0) {
                    problems.push(format!("trace IDs out of order at {}", w[1].0));
                }
                let shards = m.bloom_shard_count();
                let mut blooms = std::collections::HashMap::new();
                let mut missing = 0usize;
                for (id, _) in &traces {
                    let shard = shard_for(id, shards);
                    if let std::collections::hash_map::Entry::Vacant(slot) = blooms.entry(shard) {
                        let bkey = format!("{tenant}/{block}/bloom-{shard}");
                        let bytes = backend
                            .get(&bkey)
                            .await
                            .with_context(|| format!("reading {bkey}"))?;
                        let bloom = Bloom::parse(&bytes)
                            .with_context(|| format!("{bkey} is not a bloom filter"))?;
                        slot.insert(bloom);
                    }
                    if !blooms[&shard].test(&id.0) {
                        missing += 1;
                    }
                }
                if missing > 0 {
                    problems.push(format!(
                        "{missing} trace IDs missing from their bloom shard"
                    ));
                }
                let spans: usize = traces
                    .iter()
                    .flat_map(|(_, t)| &t.resource_spans)
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                progress.done();
                if problems.is_empty() {
                    println!(
                        "ok: {} traces, {spans} spans, {shards} bloom shards",
                        traces.len()
                    );
                } else {
                    for p in &problems {
                        println!("problem: {p}");
                    }
                    bail!("block {block} failed verification");
                }
            }
        }
        Ok(())
    })
}

/// Steps of a long operation on stderr, each with the time since the start (only when stderr is
/// a terminal: scripts read stdout and exit codes).
struct Progress {
    start: std::time::Instant,
    on: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            start: std::time::Instant::now(),
            on: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    fn step(&self, what: &str) {
        if self.on {
            eprintln!("[{:>6.1}s] {what}…", self.start.elapsed().as_secs_f64());
        }
    }

    fn done(&self) {
        self.step("done");
    }
}
