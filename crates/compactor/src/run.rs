//! The backend-scheduler and backend-worker of a single process: the compaction and retention
//! loop over the shared block list.

use std::time::{Duration, Instant};

use vivace_block::WriterConfig;
use vivace_common::overrides::Overrides;
use vivace_store::{Backend, SharedBlockList};

use crate::CompactionConfig;

/// The backend-scheduler and backend-worker in one loop: every `compaction_cycle`, every
/// compaction job of each tenant (the smallest blocks of the newest window first), then
/// retention.
pub async fn compaction_loop(
    cfg: CompactionConfig,
    template: WriterConfig,
    overrides: Overrides,
    backend: Backend,
    blocks: SharedBlockList,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.compaction_cycle) => {}
            _ = stop.changed() => return,
        }
        let list = blocks.current();
        let now = vivace_store::now_secs();
        if !cfg.compaction_disabled {
            for (tenant, tenant_blocks) in &list.tenants {
                if tenant_compaction_disabled(&overrides, tenant) {
                    continue;
                }
                // Every job the selector finds (they share no block), so compaction keeps up
                // when blocks arrive faster than one job per cycle.
                for job in crate::select(tenant_blocks, now, &cfg) {
                    if *stop.borrow() {
                        return;
                    }
                    let max_trace = overrides.tenant(tenant).global.max_bytes_per_trace;
                    let started = Instant::now();
                    match crate::compact(&backend, &job, &template, max_trace).await {
                        Ok(r) => {
                            tracing::info!(
                                tenant,
                                block = %r.output.meta.block_id,
                                inputs = r.inputs,
                                input_traces = r.input_traces,
                                traces = r.output.meta.total_objects,
                                level = r.output.meta.compaction_level,
                                discarded_spans = r.discarded_spans,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "blocks compacted"
                            );
                            blocks.replace(&job, r.output);
                        }
                        Err(e) => tracing::error!(tenant, error = %e, "compaction failed"),
                    }
                }
            }
        }
        let list = blocks.current();
        let retention_of = |tenant: &str| tenant_block_retention(&overrides, tenant);
        match crate::retention(&backend, &list, now, &cfg, retention_of).await {
            Ok(r) if !r.retired.is_empty() || r.deleted > 0 => {
                tracing::info!(
                    retired = r.retired.len(),
                    deleted = r.deleted,
                    "retention applied"
                );
                blocks.remove(&r.retired);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention failed"),
        }
    }
}

/// The tenant's `compaction.compaction_disabled` override.
fn tenant_compaction_disabled(overrides: &Overrides, tenant: &str) -> bool {
    let o = overrides.tenant(tenant);
    o.compaction
        .as_ref()
        .and_then(|c| c.get("compaction_disabled"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The tenant's `compaction.block_retention` override, if set.
fn tenant_block_retention(overrides: &Overrides, tenant: &str) -> Option<Duration> {
    let o = overrides.tenant(tenant);
    let v = o.compaction.as_ref()?.get("block_retention")?;
    humantime::parse_duration(v.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_compaction_overrides_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overrides.yaml");
        std::fs::write(
            &file,
            "overrides:\n  team-a:\n    compaction:\n      block_retention: 48h\n      compaction_disabled: true\n",
        )
        .unwrap();
        let cfg: vivace_common::overrides::OverridesConfig =
            serde_yaml_ng::from_str(&format!("per_tenant_override_config: {}\n", file.display()))
                .unwrap();
        let o = vivace_common::overrides::Overrides::new(&cfg).unwrap();
        assert_eq!(
            tenant_block_retention(&o, "team-a"),
            Some(Duration::from_secs(48 * 3600))
        );
        assert!(tenant_compaction_disabled(&o, "team-a"));
        assert_eq!(tenant_block_retention(&o, "team-b"), None);
        assert!(!tenant_compaction_disabled(&o, "team-b"));
    }
}
