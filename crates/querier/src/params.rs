//! Query parameters shared by search, tags and tag values: the time range in every form Tempo
//! accepts (compatibility notes §1.3), durations, limits.

use std::collections::HashMap;

use vivace_common::Status;

/// A time parameter in unix nanoseconds: unix seconds, unix nanoseconds (more than 10
/// digits), fractional seconds, or RFC 3339.
pub(crate) fn parse_time_ns(name: &str, s: &str) -> Result<i64, Status> {
    let bad = || Status::bad_request(format!("invalid {name}: {s}"));
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        let digits = s.trim_start_matches('-').len();
        return Ok(if digits > 10 {
            i
        } else {
            i.saturating_mul(1_000_000_000)
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Ok((f * 1e9) as i64);
        }
        return Err(bad());
    }
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .ok_or_else(bad)
}

/// A Prometheus or Go duration: `15m`, `1h30m`, `2d`, `1w`, `500ms`.
pub(crate) fn parse_duration(name: &str, s: &str) -> Result<std::time::Duration, Status> {
    let bad = || Status::bad_request(format!("invalid {name}: {s}"));
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let mult = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            "y" => 365.0 * 86400.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = tail;
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// The `[start, end]` of a search-like request in unix seconds. Without `start`/`end`/`since`:
/// the last `default_since` up to now minus `end_cutoff`. Only one of `start` and `end` is an
/// error, as in Tempo.
pub(crate) fn time_range(
    q: &HashMap<String, String>,
    default_since: std::time::Duration,
    end_cutoff: std::time::Duration,
    max_duration_opt: Option<std::time::Duration>,
) -> Result<(i64, i64), Status> {
    let (s, e) = time_range_ns(q, default_since, end_cutoff, max_duration_opt)?;
    Ok((s.div_euclid(1_000_000_000), e.div_euclid(1_000_000_000)))
}

/// [`time_range`] in unix nanoseconds.
pub(crate) fn time_range_ns(
    q: &HashMap<String, String>,
    default_since: std::time::Duration,
    end_cutoff: std::time::Duration,
    max_duration_opt: Option<std::time::Duration>,
) -> Result<(i64, i64), Status> {
    const NS: i64 = 1_000_000_000;
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let latest = now - end_cutoff.as_nanos() as i64;
    let (start, end) = match (get("start"), get("end"), get("since")) {
        (Some(s), Some(e), _) => {
            let (s, e) = (parse_time_ns("start", s)?, parse_time_ns("end", e)?);
            (s, e.min(latest.max(s)))
        }
        (None, None, Some(since)) => {
            let d = parse_duration("since", since)?;
            (latest - d.as_nanos() as i64, latest)
        }
        (None, None, None) => (latest - default_since.as_nanos() as i64, latest),
        _ => {
            return Err(Status::bad_request(
                "invalid start and end: both or neither must be given",
            ));
        }
    };
    if end < start {
        return Err(Status::bad_request(format!(
            "invalid start and end: end ({}) must be after start ({})",
            end.div_euclid(NS),
            start.div_euclid(NS)
        )));
    }
    if let Some(max) = max_duration_opt
        && !max.is_zero()
        && (end - start) as u128 > max.as_nanos()
    {
        return Err(Status::bad_request(format!(
            "range specified by start and end ({}s) exceeds {}s. received start={} end={}",
            (end - start) / NS,
            max.as_secs(),
            start.div_euclid(NS),
            end.div_euclid(NS)
        )));
    }
    Ok((start, end))
}

/// A non-negative integer parameter, `default` when absent.
pub(crate) fn uint(q: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, Status> {
    match q.get(name).map(String::as_str).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| Status::bad_request(format!("invalid {name}: {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_forms() {
        let s = 1_700_000_000_000_000_000i64;
        assert_eq!(parse_time_ns("start", "1700000000").unwrap(), s);
        assert_eq!(
            parse_time_ns("start", "1700000000123456789").unwrap(),
            s + 123_456_789
        );
        assert_eq!(
            parse_time_ns("start", "1700000000.5").unwrap(),
            s + 500_000_000
        );
        assert_eq!(parse_time_ns("start", "2023-11-14T22:13:20Z").unwrap(), s);
        assert!(parse_time_ns("start", "yesterday").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("since", "15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("since", "1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("since", "2d").unwrap().as_secs(), 172_800);
        assert_eq!(
            parse_duration("minDuration", "1.5s").unwrap().as_millis(),
            1500
        );
        assert!(parse_duration("since", "5 minutes").is_err());
    }

    #[test]
    fn ranges() {
        let m = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let d = std::time::Duration::from_secs(900);
        let z = std::time::Duration::ZERO;
        let (s, e) = time_range(&m(&[]), d, z, None).unwrap();
        assert_eq!(e - s, 900);
        assert!(time_range(&m(&[("start", "10")]), d, z, None).is_err());
        assert!(time_range(&m(&[("start", "10"), ("end", "5")]), d, z, None).is_err());
        let week = std::time::Duration::from_secs(7 * 86400);
        assert!(time_range(&m(&[("start", "0"), ("end", "1000000")]), d, z, Some(week)).is_err());
        assert_eq!(
            time_range(&m(&[("start", "100"), ("end", "200")]), d, z, None).unwrap(),
            (100, 200)
        );
    }
}
