//! One tenant's series: counters, histograms and gauges keyed by label values, with Tempo's
//! limits (`max_active_series` → one overflow series per metric; `max_cardinality_per_label` →
//! `__cardinality_overflow__`), staleness, and collection into remote-write time series.

use std::collections::{HashMap, HashSet};

use crate::remote_write::{Exemplar, Label, Sample, TimeSeries};

/// The value a label takes once it has too many distinct values.
pub const CARDINALITY_OVERFLOW: &str = "__cardinality_overflow__";

/// Settings of a tenant's registry.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Labels on every series (external labels, the tenant label), sorted by name.
    pub constant_labels: Vec<(String, String)>,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Milliseconds after which a series not updated is dropped.
    pub stale_ms: i64,
    pub max_active_series: u64,
    pub max_cardinality_per_label: u64,
    /// The label of an exemplar's trace ID.
    pub trace_id_label: String,
}

/// Index of a metric in its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricId(usize);

#[derive(Debug)]
enum Kind {
    Counter,
    Gauge,
    /// Upper bounds in seconds, ascending, without `+Inf`.
    Histogram(Vec<f64>),
}

#[derive(Debug, Clone)]
struct Series {
    value: f64,
    /// Per-bucket counts (not cumulative), `+Inf` last.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
    /// The latest exemplar since the last collection: trace ID, value, time (ms).
    exemplar: Option<(String, f64, i64)>,
    updated_ms: i64,
    /// Not yet collected: counters and histograms start with a zero sample.
    new: bool,
}

impl Kind {
    /// The time series one label set writes: a histogram's buckets, `+Inf`, sum and count.
    fn cost(&self) -> u64 {
        match self {
            Kind::Histogram(b) => b.len() as u64 + 3,
            _ => 1,
        }
    }
}

impl Series {
    fn new(kind: &Kind, now_ms: i64) -> Series {
        Series {
            value: 0.0,
            buckets: match kind {
                Kind::Histogram(b) => vec![0; b.len() + 1],
                _ => Vec::new(),
            },
            sum: 0.0,
            count: 0,
            exemplar: None,
            updated_ms: now_ms,
            new: true,
        }
    }
}

#[derive(Debug)]
struct Metric {
    name: String,
    label_names: Vec<String>,
    kind: Kind,
    series: HashMap<Vec<String>, Series>,
    /// Samples of new series refused by `max_active_series`.
    overflow: Option<Series>,
}

/// What a registry refused, since it was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Samples that went to an overflow series (`max_active_series`).
    pub series: u64,
    /// Label values replaced by [`CARDINALITY_OVERFLOW`].
    pub label_values: u64,
}

/// One tenant's series.
#[derive(Debug)]
pub struct Registry {
    settings: RegistrySettings,
    metrics: Vec<Metric>,
    active: u64,
    /// Distinct values seen per label name, for `max_cardinality_per_label`.
    values: HashMap<String, HashSet<String>>,
    pub limited: Limited,
}

impl Registry {
    pub fn new(settings: RegistrySettings) -> Registry {
        Registry {
            settings,
            metrics: Vec::new(),
            active: 0,
            values: HashMap::new(),
            limited: Limited::default(),
        }
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Time series held now (a histogram's label set counts its buckets, sum and count; overflow
    /// series included).
    pub fn active_series(&self) -> u64 {
        self.active
    }

    fn add(&mut self, name: &str, label_names: &[String], kind: Kind) -> MetricId {
        let max = self.settings.max_label_name_length;
        let label_names = label_names
            .iter()
            .map(|n| truncate(n, max).to_string())
            .collect();
        self.metrics.push(Metric {
            name: name.to_string(),
            label_names,
            kind,
            series: HashMap::new(),
            overflow: None,
        });
        MetricId(self.metrics.len() - 1)
    }

    /// The label names of a metric.
    pub fn label_names(&self, id: MetricId) -> &[String] {
        &self.metrics[id.0].label_names
    }

    /// The gauge `name` with exactly these label names, added if there is none (target info
    /// has one per set of resource attribute names).
    pub fn find_or_add_gauge(&mut self, name: &str, label_names: &[String]) -> MetricId {
        match self
            .metrics
            .iter()
            .position(|m| m.name == name && m.label_names == label_names)
        {
            Some(i) => MetricId(i),
            None => self.gauge(name, label_names),
        }
    }

    pub fn counter(&mut self, name: &str, label_names: &[String]) -> MetricId {
        self.add(name, label_names, Kind::Counter)
    }

    pub fn gauge(&mut self, name: &str, label_names: &[String]) -> MetricId {
        self.add(name, label_names, Kind::Gauge)
    }

    pub fn histogram(&mut self, name: &str, label_names: &[String], buckets: &[f64]) -> MetricId {
        let mut b: Vec<f64> = buckets.iter().copied().filter(|v| v.is_finite()).collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        self.add(name, label_names, Kind::Histogram(b))
    }

    /// The series of `values` (one per label name), created if the limits allow; else the
    /// metric's overflow series.
    fn series(&mut self, id: MetricId, values: &[String], now_ms: i64) -> &mut Series {
        let exists = self.metrics[id.0].series.contains_key(values);
        if !exists {
            let key = self.admit_values(id, values);
            let m = &mut self.metrics[id.0];
            if !m.series.contains_key(&key) {
                let max = self.settings.max_active_series;
                let cost = m.kind.cost();
                if max > 0 && self.active + cost > max {
                    self.limited.series += 1;
                    if m.overflow.is_none() {
                        self.active += cost;
                    }
                    let s = m
                        .overflow
                        .get_or_insert_with(|| Series::new(&m.kind, now_ms));
                    s.updated_ms = now_ms;
                    return s;
                }
                self.active += cost;
                m.series.insert(key.clone(), Series::new(&m.kind, now_ms));
            }
            let s = m.series.get_mut(&key).expect("inserted");
            s.updated_ms = now_ms;
            return s;
        }
        let s = self.metrics[id.0]
            .series
            .get_mut(values)
            .expect("checked above");
        s.updated_ms = now_ms;
        s
    }

    /// Label values of a new series: cut to the maximum length, and past the per-label
    /// cardinality limit replaced by [`CARDINALITY_OVERFLOW`].
    fn admit_values(&mut self, id: MetricId, values: &[String]) -> Vec<String> {
        let max_len = self.settings.max_label_value_length;
        let max_card = self.settings.max_cardinality_per_label;
        let names = &self.metrics[id.0].label_names;
        let mut out = Vec::with_capacity(values.len());
        for (name, v) in names.iter().zip(values) {
            let v = truncate(v, max_len);
            if max_card == 0 {
                out.push(v.to_string());
                continue;
            }
            let seen = self.values.entry(name.clone()).or_default();
            if seen.contains(v) {
                out.push(v.to_string());
            } else if (seen.len() as u64) < max_card {
                seen.insert(v.to_string());
                out.push(v.to_string());
            } else {
                self.limited.label_values += 1;
                out.push(CARDINALITY_OVERFLOW.to_string());
            }
        }
        out
    }

    /// Adds `by` to a counter.
    pub fn inc(&mut self, id: MetricId, values: &[String], by: f64, now_ms: i64) {
        self.series(id, values, now_ms).value += by;
    }

    /// Sets a gauge.
    pub fn set(&mut self, id: MetricId, values: &[String], v: f64, now_ms: i64) {
        self.series(id, values, now_ms).value = v;
    }

    /// Observes `v` (seconds) in a histogram, keeping `trace_id` as the exemplar.
    pub fn observe(
        &mut self,
        id: MetricId,
        values: &[String],
        v: f64,
        trace_id: Option<&str>,
        now_ms: i64,
    ) {
        let bucket = match &self.metrics[id.0].kind {
            Kind::Histogram(b) => b.partition_point(|le| *le < v),
            _ => return,
        };
        let s = self.series(id, values, now_ms);
        s.buckets[bucket] += 1;
        s.sum += v;
        s.count += 1;
        if let Some(t) = trace_id {
            s.exemplar = Some((t.to_string(), v, now_ms));
        }
    }

    /// Drops series not updated for the stale duration, then writes every series at `now_ms`
    /// into `out` (counters and histograms seen for the first time get a zero sample 1 ms
    /// before, so `increase()` counts their first interval).
    pub fn collect(&mut self, now_ms: i64, exemplars: bool, out: &mut Vec<TimeSeries>) {
        let stale_before = now_ms - self.settings.stale_ms;
        let mut removed = 0u64;
        for m in &mut self.metrics {
            let before = m.series.len();
            m.series.retain(|_, s| s.updated_ms >= stale_before);
            removed += (before - m.series.len()) as u64 * m.kind.cost();
            if m.overflow
                .as_ref()
                .is_some_and(|s| s.updated_ms < stale_before)
            {
                m.overflow = None;
                removed += m.kind.cost();
            }
        }
        if removed > 0 {
            self.active -= removed;
            // Values of dropped series may be reused: rebuild the per-label sets.
            if self.settings.max_cardinality_per_label > 0 {
                self.values.clear();
                for m in &self.metrics {
                    for key in m.series.keys() {
                        for (n, v) in m.label_names.iter().zip(key) {
                            self.values.entry(n.clone()).or_default().insert(v.clone());
                        }
                    }
                }
            }
        }
        let constant = &self.settings.constant_labels;
        let tid_label = &self.settings.trace_id_label;
        for m in &mut self.metrics {
            let overflow_key = [("metric_overflow".to_string(), "true".to_string())];
            let named = m.series.iter_mut().map(|(k, s)| {
                let labels: Vec<(String, String)> = m
                    .label_names
                    .iter()
                    .cloned()
                    .zip(k.iter().cloned())
                    .collect();
                (labels, s)
            });
            let all: Vec<_> = named
                .chain(m.overflow.iter_mut().map(|s| (overflow_key.to_vec(), s)))
                .collect();
            for (labels, s) in all {
                let base = |name: &str, extra: Option<(&str, String)>| {
                    let mut l: Vec<Label> = Vec::with_capacity(labels.len() + constant.len() + 2);
                    l.push(Label::new("__name__", name));
                    for (n, v) in labels.iter().chain(constant.iter()) {
                        if !v.is_empty() {
                            l.push(Label::new(n, v));
                        }
                    }
                    if let Some((n, v)) = extra {
                        l.push(Label::new(n, &v));
                    }
                    l.sort_by(|a, b| a.name.cmp(&b.name));
                    l.dedup_by(|a, b| a.name == b.name);
                    l
                };
                let samples = |v: f64, first: bool, zero_first: bool| {
                    let mut out = Vec::with_capacity(2);
                    if first && zero_first {
                        out.push(Sample {
                            value: 0.0,
                            timestamp: now_ms - 1,
                        });
                    }
                    out.push(Sample {
                        value: v,
                        timestamp: now_ms,
                    });
                    out
                };
                match &m.kind {
                    Kind::Counter => out.push(TimeSeries {
                        labels: base(&m.name, None),
                        samples: samples(s.value, s.new, true),
                        exemplars: Vec::new(),
                    }),
                    Kind::Gauge => out.push(TimeSeries {
                        labels: base(&m.name, None),
                        samples: samples(s.value, s.new, false),
                        exemplars: Vec::new(),
                    }),
                    Kind::Histogram(bounds) => {
                        let bucket_name = format!("{}_bucket", m.name);
                        let ex = s.exemplar.take().filter(|_| exemplars);
                        let ex_bucket = ex
                            .as_ref()
                            .map(|(_, v, _)| bounds.partition_point(|le| le < v));
                        let mut cum = 0u64;
                        for (i, c) in s.buckets.iter().enumerate() {
                            cum += c;
                            let le = bounds.get(i).map_or("+Inf".to_string(), |b| fmt_le(*b));
                            let exemplars = match (&ex, ex_bucket) {
                                (Some((t, v, ts)), Some(b)) if b == i => vec![Exemplar {
                                    labels: vec![Label::new(tid_label, t)],
                                    value: *v,
                                    timestamp: *ts,
                                }],
                                _ => Vec::new(),
                            };
                            out.push(TimeSeries {
                                labels: base(&bucket_name, Some(("le", le))),
                                samples: samples(cum as f64, s.new, true),
                                exemplars,
                            });
                        }
                        out.push(TimeSeries {
                            labels: base(&format!("{}_sum", m.name), None),
                            samples: samples(s.sum, s.new, true),
                            exemplars: Vec::new(),
                        });
                        out.push(TimeSeries {
                            labels: base(&format!("{}_count", m.name), None),
                            samples: samples(s.count as f64, s.new, true),
                            exemplars: Vec::new(),
                        });
                    }
                }
                s.new = false;
            }
        }
    }
}

/// A bucket bound as Prometheus prints it (`0.002`, `1`, `16.384`).
fn fmt_le(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('e') { format!("{v:e}") } else { s }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RegistrySettings {
        RegistrySettings {
            constant_labels: vec![("cluster".into(), "c1".into())],
            max_label_name_length: 1024,
            max_label_value_length: 8,
            stale_ms: 1000,
            max_active_series: 0,
            max_cardinality_per_label: 0,
            trace_id_label: "traceID".into(),
        }
    }

    fn vals(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn find<'a>(ts: &'a [TimeSeries], name: &str, label: (&str, &str)) -> &'a TimeSeries {
        ts.iter()
            .find(|t| {
                t.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
                    && t.labels
                        .iter()
                        .any(|l| l.name == label.0 && l.value == label.1)
            })
            .unwrap_or_else(|| panic!("no {name}{label:?} in {ts:?}"))
    }

    #[test]
    fn counters_and_histograms_collect_with_a_leading_zero_and_cumulative_buckets() {
        let mut r = Registry::new(settings());
        let c = r.counter("calls_total", &vals(&["service"]));
        let h = r.histogram("latency", &vals(&["service"]), &[0.1, 1.0]);
        r.inc(c, &vals(&["a"]), 1.0, 10);
        r.inc(c, &vals(&["a"]), 2.0, 10);
        r.observe(h, &vals(&["a"]), 0.05, Some("t1"), 10);
        r.observe(h, &vals(&["a"]), 0.5, Some("t2"), 10);
        r.observe(h, &vals(&["a"]), 5.0, None, 10);
        let mut out = Vec::new();
        r.collect(100, true, &mut out);
        let calls = find(&out, "calls_total", ("service", "a"));
        assert_eq!(calls.samples.len(), 2);
        assert_eq!(
            (calls.samples[0].value, calls.samples[0].timestamp),
            (0.0, 99)
        );
        assert_eq!(
            (calls.samples[1].value, calls.samples[1].timestamp),
            (3.0, 100)
        );
        assert!(
            calls
                .labels
                .iter()
                .any(|l| l.name == "cluster" && l.value == "c1")
        );
        let le = |b: &str| find(&out, "latency_bucket", ("le", b)).samples[1].value;
        assert_eq!((le("0.1"), le("1"), le("+Inf")), (1.0, 2.0, 3.0));
        assert_eq!(
            find(&out, "latency_count", ("service", "a")).samples[1].value,
            3.0
        );
        assert_eq!(
            find(&out, "latency_sum", ("service", "a")).samples[1].value,
            5.55
        );
        let ex = &find(&out, "latency_bucket", ("le", "1")).exemplars;
        assert_eq!(ex.len(), 1, "the latest exemplar, on its bucket");
        assert_eq!(ex[0].labels[0].value, "t2");
        // Second collection: no leading zero; stale series go.
        out.clear();
        r.collect(200, true, &mut out);
        assert_eq!(find(&out, "calls_total", ("service", "a")).samples.len(), 1);
        out.clear();
        r.collect(2000, true, &mut out);
        assert!(out.is_empty(), "stale after 1 s: {out:?}");
        assert_eq!(r.active_series(), 0);
    }

    #[test]
    fn limits_overflow_into_one_series_and_one_label_value() {
        let mut s = settings();
        s.max_active_series = 2;
        let mut r = Registry::new(s);
        let c = r.counter("calls_total", &vals(&["service"]));
        for svc in ["a", "b", "c", "d"] {
            r.inc(c, &vals(&[svc]), 1.0, 10);
        }
        r.inc(c, &vals(&["a"]), 1.0, 10);
        assert_eq!(r.limited.series, 2);
        let mut out = Vec::new();
        r.collect(100, false, &mut out);
        assert_eq!(
            find(&out, "calls_total", ("service", "a")).samples[1].value,
            2.0
        );
        let over = find(&out, "calls_total", ("metric_overflow", "true"));
        assert_eq!(over.samples[1].value, 2.0);
        assert!(!over.labels.iter().any(|l| l.name == "service"));

        let mut s = settings();
        s.max_cardinality_per_label = 2;
        let mut r = Registry::new(s);
        let c = r.counter("calls_total", &vals(&["service", "span_name"]));
        for (svc, n) in [("a", "x"), ("b", "x"), ("c", "x"), ("a", "y")] {
            r.inc(c, &vals(&[svc, n]), 1.0, 10);
        }
        let mut out = Vec::new();
        r.collect(100, false, &mut out);
        let over = find(&out, "calls_total", ("service", CARDINALITY_OVERFLOW));
        assert_eq!(over.samples[1].value, 1.0);
        assert_eq!(r.limited.label_values, 1);
        // Long values are cut to max_label_value_length.
        let mut r = Registry::new(settings());
        let c = r.counter("calls_total", &vals(&["service", "span_name"]));
        r.inc(c, &vals(&["a", "0123456789"]), 1.0, 10);
        out.clear();
        r.collect(100, false, &mut out);
        assert!(
            out.iter()
                .any(|t| t.labels.iter().any(|l| l.value == "01234567"))
        );
    }
}
