use std::time::Duration;

use serde::Deserialize;

/// `compactor.compaction` (Tempo 2.x) / `backend_worker.compaction` (Tempo 3): the keys vivace
/// acts on, with Tempo's defaults. Other keys of that section are accepted and reported.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CompactionConfig {
    /// Blocks whose end is older than this are deleted (Tempo's default 14 days).
    #[serde(with = "humantime_serde")]
    pub block_retention: Duration,
    /// Compacted blocks are kept this long for readers still holding an older list (1h).
    #[serde(with = "humantime_serde")]
    pub compacted_block_retention: Duration,
    /// Blocks are combined only within windows of this length by end time (1h).
    #[serde(with = "humantime_serde")]
    pub compaction_window: Duration,
    /// How often compaction and retention run (Tempo's `compaction_cycle`, 30s).
    #[serde(with = "humantime_serde")]
    pub compaction_cycle: Duration,
    pub max_compaction_objects: u64,
    pub max_block_bytes: u64,
    pub min_input_blocks: usize,
    pub max_input_blocks: usize,
    /// 0 = unlimited.
    pub max_compaction_level: u32,
    /// vivace: turn compaction off (retention still runs).
    pub compaction_disabled: bool,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            block_retention: Duration::from_secs(14 * 24 * 3600),
            compacted_block_retention: Duration::from_secs(3600),
            compaction_window: Duration::from_secs(3600),
            compaction_cycle: Duration::from_secs(30),
            max_compaction_objects: 6_000_000,
            max_block_bytes: 100 << 30,
            min_input_blocks: 2,
            max_input_blocks: 4,
            max_compaction_level: 0,
            compaction_disabled: false,
            other: Default::default(),
        }
    }
}
