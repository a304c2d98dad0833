use std::time::Duration;

use serde::Deserialize;

/// `live_store:` — how long traces stay live and how much memory recent traces may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A trace that received no span for this long is completed (Tempo's default 5s).
    #[serde(with = "humantime_serde")]
    pub max_trace_idle: Duration,
    /// A trace live for this long is completed even if spans keep coming (default 30s).
    #[serde(with = "humantime_serde")]
    pub max_trace_live: Duration,
    /// Completed traces are held in memory this long (Tempo's default 20m).
    #[serde(with = "humantime_serde")]
    pub complete_block_timeout: Duration,
    /// Per tenant, bytes of live (not yet completed) traces; pushes beyond it are refused with
    /// 429 / RESOURCE_EXHAUSTED (reason `live_traces_exceeded`). Tempo's default 250 MB.
    pub max_live_traces_bytes: u64,
    /// vivace: bytes of completed, compressed traces held in memory across tenants; the oldest
    /// already written to a block are released first when it is passed.
    pub max_complete_bytes: u64,
    /// A tenant's completed traces are written as a block once the oldest has waited this long
    /// (Tempo's default 30s)…
    #[serde(with = "humantime_serde")]
    pub max_block_duration: Duration,
    /// …or once they reach this many (uncompressed) bytes (Tempo's default 50 MiB).
    pub max_block_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_trace_idle: Duration::from_secs(5),
            max_trace_live: Duration::from_secs(30),
            complete_block_timeout: Duration::from_secs(20 * 60),
            max_live_traces_bytes: 250_000_000,
            max_complete_bytes: 256 << 20,
            max_block_duration: Duration::from_secs(30),
            max_block_bytes: 50 << 20,
        }
    }
}
