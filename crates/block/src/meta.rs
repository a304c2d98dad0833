//! `meta.json` (§5.2): written by Go's `encoding/json` from Tempo's block meta.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `meta.json`, with Tempo's field names and order (Go's `encoding/json` writes struct fields in
/// declaration order; `size`, `dedicatedColumns` and `replicationFactor` are `omitempty`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub format: String,
    #[serde(rename = "blockID")]
    pub block_id: String,
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
    /// RFC 3339, whole seconds.
    pub start_time: String,
    pub end_time: String,
    #[serde(default)]
    pub total_objects: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default)]
    pub compaction_level: u32,
    #[serde(default)]
    pub index_page_size: u32,
    /// Row groups in `data.parquet`.
    #[serde(default)]
    pub total_records: u32,
    /// Number of `bloom-<n>` shards (0 in old blocks means 10).
    #[serde(default)]
    pub bloom_shards: u32,
    /// Length of the parquet footer (the u32 before the trailing `PAR1`).
    #[serde(default)]
    pub footer_size: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedicated_columns: Vec<DedicatedColumn>,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub replication_factor: u32,
    /// Only in `meta.compacted.json`: when the block was compacted or retained out (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_time: Option<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_span(s: &str) -> bool {
    s.is_empty() || s == "span"
}

fn is_string(s: &str) -> bool {
    s.is_empty() || s == "string"
}

/// A dedicated attribute column: `s` scope (`span` when empty), `n` name, `t` type (`string`
/// when empty), `o` options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct DedicatedColumn {
    #[serde(rename = "s", default, skip_serializing_if = "is_span")]
    pub scope: String,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "t", default, skip_serializing_if = "is_string")]
    pub kind: String,
    #[serde(rename = "o", default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl DedicatedColumn {
    fn new(scope: &str, name: &str, int: bool) -> DedicatedColumn {
        DedicatedColumn {
            scope: if scope == "span" {
                String::new()
            } else {
                scope.into()
            },
            name: name.into(),
            kind: if int { "int".into() } else { String::new() },
            options: Vec::new(),
        }
    }

    /// Tempo's default dedicated columns (`defaultDedicatedColumns`), in its order.
    pub fn defaults() -> Vec<DedicatedColumn> {
        let mut out: Vec<DedicatedColumn> = [
            "k8s.cluster.name",
            "k8s.namespace.name",
            "k8s.pod.name",
            "k8s.container.name",
        ]
        .iter()
        .map(|n| DedicatedColumn::new("resource", n, false))
        .collect();
        for (n, int) in [
            ("http.request.method", false),
            ("http.response.status_code", true),
            ("url.path", false),
            ("url.route", false),
            ("server.address", false),
            ("server.port", true),
            ("http.method", false),
            ("http.url", false),
            ("http.route", false),
            ("http.status_code", true),
        ] {
            out.push(DedicatedColumn::new("span", n, int));
        }
        out
    }

    pub fn scope(&self) -> &str {
        if self.scope.is_empty() {
            "span"
        } else {
            &self.scope
        }
    }

    pub fn is_int(&self) -> bool {
        self.kind == "int"
    }
}

impl BlockMeta {
    pub fn read(block_dir: &Path) -> Result<BlockMeta> {
        let path = block_dir.join("meta.json");
        let text = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| Error::Meta { path, source })
    }

    /// The dedicated columns of one scope and type, in slot order (`String01`, `String02`, …).
    pub fn dedicated(&self, scope: &str, int: bool) -> Vec<&str> {
        self.dedicated_columns
            .iter()
            .filter(|c| c.scope() == scope && c.is_int() == int)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The leaf column of dedicated attribute `name` of `scope` (`span` or `resource`) and
    /// type, when it has one: `rs.ss.Spans.DedicatedAttributes.String01` and the like.
    pub fn dedicated_column(&self, scope: &str, int: bool, name: &str) -> Option<String> {
        let slot = self.dedicated(scope, int).iter().position(|n| *n == name)?;
        let prefix = if scope == "resource" {
            "rs.Resource"
        } else {
            "rs.ss.Spans"
        };
        let kind = if int { "Int" } else { "String" };
        Some(format!(
            "{prefix}.DedicatedAttributes.{kind}{:02}",
            slot + 1
        ))
    }

    /// Bloom shard count, with Tempo's legacy default.
    pub fn bloom_shard_count(&self) -> u32 {
        if self.bloom_shards == 0 {
            10
        } else {
            self.bloom_shards
        }
    }

    /// The JSON Tempo writes (`meta.json`, or `meta.compacted.json` with `compacted_time`).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Start and end as unix seconds.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        Some((
            rfc3339_seconds(&self.start_time)?,
            rfc3339_seconds(&self.end_time)?,
        ))
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of unix seconds, as Go's `time.Time` marshals a whole second in UTC.
pub fn rfc3339(seconds: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn rfc3339_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r[1..3].parse::<i64>().ok()? * 3600 + r[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_seconds("2026-11-23T08:23:27Z"), Some(1_795_422_207));
        assert_eq!(
            rfc3339_seconds("2026-11-23T09:23:27.5+01:00"),
            Some(1_795_422_207)
        );
    }
}
