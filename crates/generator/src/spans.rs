//! What the processors read from a span: attributes as label values, intrinsics in Tempo's
//! spelling, Prometheus label-name sanitizing.

use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
use vivace_proto::otlp::trace::{Span, span::SpanKind, status::StatusCode};

/// An attribute value as a label value: strings as they are, numbers and booleans printed,
/// arrays and maps as JSON-like text.
pub fn value_string(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex::encode(b),
        Some(any_value::Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(value_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Some(any_value::Value::KvlistValue(l)) => format!(
            "{{{}}}",
            l.values
                .iter()
                .map(|kv| format!(
                    "{}:{}",
                    kv.key,
                    kv.value.as_ref().map(value_string).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
        // Dictionary references of the profiles signal; never on spans.
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

/// The value of `key` in the first of `lists` that has it.
pub fn find<'a>(key: &str, lists: &[&'a [KeyValue]]) -> Option<&'a AnyValue> {
    lists
        .iter()
        .find_map(|l| l.iter().find(|kv| kv.key == key))
        .and_then(|kv| kv.value.as_ref())
}

/// [`find`] as a label value.
pub fn find_string(key: &str, lists: &[&[KeyValue]]) -> Option<String> {
    find(key, lists).map(value_string)
}

/// `SPAN_KIND_SERVER` etc.
pub fn kind_name(span: &Span) -> &'static str {
    match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

pub fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified)
}

/// `STATUS_CODE_OK`, `STATUS_CODE_ERROR` or `STATUS_CODE_UNSET`.
pub fn status_name(span: &Span) -> &'static str {
    match status(span) {
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
        StatusCode::Unset => "STATUS_CODE_UNSET",
    }
}

pub fn status(span: &Span) -> StatusCode {
    span.status
        .as_ref()
        .and_then(|s| StatusCode::try_from(s.code).ok())
        .unwrap_or(StatusCode::Unset)
}

pub fn is_error(span: &Span) -> bool {
    status(span) == StatusCode::Error
}

/// The span's duration in seconds (0 when it ends before it starts).
pub fn duration_seconds(span: &Span) -> f64 {
    span.end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e9
}

/// A Prometheus label name from an attribute name: characters other than `[a-zA-Z0-9_]` become
/// `_`, a leading digit gets a `key_` prefix, and a name that collides with one of `reserved`
/// (the processor's own labels) gets a `__` prefix (Tempo's `SanitizeLabelNameWithCollisions`).
pub fn sanitize_label(name: &str, reserved: &[&str]) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        return "_".into();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("key_{out}");
    }
    if reserved.contains(&out.as_str()) {
        out = format!("__{out}");
    }
    out
}

/// A trace ID as Tempo prints it in exemplars: lowercase hex.
pub fn trace_hex(id: &[u8]) -> String {
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitized_as_tempo() {
        let r = ["service", "span_name"];
        assert_eq!(sanitize_label("http.method", &r), "http_method");
        assert_eq!(sanitize_label("1st", &r), "key_1st");
        assert_eq!(sanitize_label("service", &r), "__service");
        assert_eq!(sanitize_label("service.namespace", &r), "service_namespace");
    }
}
