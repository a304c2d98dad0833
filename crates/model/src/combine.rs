//! Combining pieces of one trace into a single `tempopb.Trace`.
//!
//! Resource spans with the same resource (and schema URL) are merged, scope spans with the same
//! scope likewise, and a span whose [`span_key`] was already seen is dropped. Order of first
//! appearance is kept, so combining is deterministic.

use std::collections::HashMap;
use std::collections::HashSet;

use prost::Message;
use vivace_proto::otlp::trace::{ResourceSpans, Span};
use vivace_proto::tempopb::Trace;

/// The identity of a span for deduplication: its span ID and kind (Tempo's rule: a Zipkin client
/// and server span may share an ID but differ in kind).
pub fn span_key(span: &Span) -> u64 {
    span_key_of(&span.span_id, span.kind)
}

/// [`span_key`] of a span given by its ID and kind.
pub fn span_key_of(span_id: &[u8], kind: i32) -> u64 {
    let mut buf = [0u8; 12];
    let n = span_id.len().min(8);
    buf[..n].copy_from_slice(&span_id[..n]);
    buf[8..].copy_from_slice(&kind.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&buf)
}

/// Merges traces into one, deduplicating spans. `seen` may hold keys of spans to drop.
pub fn combine_traces(parts: impl IntoIterator<Item = Trace>, seen: &mut HashSet<u64>) -> Trace {
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut by_resource: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut by_scope: HashMap<(usize, Vec<u8>), usize> = HashMap::new();
    for part in parts {
        for rs in part.resource_spans {
            let rkey = resource_key(&rs);
            let ri = *by_resource.entry(rkey).or_insert_with(|| {
                out.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: Vec::new(),
                    schema_url: rs.schema_url.clone(),
                });
                out.len() - 1
            });
            for mut ss in rs.scope_spans {
                let spans = std::mem::take(&mut ss.spans);
                let skey = ss.encode_to_vec();
                let target = &mut out[ri].scope_spans;
                let si = *by_scope.entry((ri, skey)).or_insert_with(|| {
                    target.push(ss);
                    target.len() - 1
                });
                let dest = &mut target[si].spans;
                dest.extend(spans.into_iter().filter(|s| seen.insert(span_key(s))));
            }
        }
    }
    for rs in &mut out {
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    out.retain(|rs| !rs.scope_spans.is_empty());
    Trace {
        resource_spans: out,
    }
}

fn resource_key(rs: &ResourceSpans) -> Vec<u8> {
    let mut k = rs
        .resource
        .as_ref()
        .map(|r| r.encode_to_vec())
        .unwrap_or_default();
    k.push(0xff);
    k.extend_from_slice(rs.schema_url.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vivace_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use vivace_proto::otlp::resource::Resource;
    use vivace_proto::otlp::trace::ScopeSpans;

    fn piece(service: &str, spans: &[(u8, i32)]) -> Trace {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let spans = spans
            .iter()
            .map(|(id, kind)| Span {
                span_id: vec![*id; 8],
                kind: *kind,
                name: format!("s{id}"),
                ..Default::default()
            })
            .collect();
        Trace {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn keys(t: &Trace) -> Vec<(String, u8, i32)> {
        let mut v = Vec::new();
        for rs in &t.resource_spans {
            let svc = format!("{:?}", rs.resource.as_ref().unwrap().attributes[0].value);
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    v.push((svc.clone(), s.span_id[0], s.kind));
                }
            }
        }
        v.sort();
        v
    }

    #[test]
    fn merges_resources_and_drops_duplicates() {
        let t = combine_traces(
            [
                piece("a", &[(1, 2), (2, 2)]),
                piece("b", &[(3, 3)]),
                piece("a", &[(2, 2), (2, 3), (4, 1)]),
            ],
            &mut HashSet::new(),
        );
        assert_eq!(t.resource_spans.len(), 2);
        assert_eq!(t.resource_spans[0].scope_spans.len(), 1);
        assert_eq!(t.resource_spans[0].scope_spans[0].spans.len(), 4);
        assert_eq!(keys(&t).len(), 5);
    }

    proptest! {
        /// Combining is independent of how the spans were split into pushes and of their order,
        /// and never loses or duplicates a distinct span.
        #[test]
        fn any_split_gives_the_same_spans(spans in proptest::collection::vec((0u8..3, 0u8..20, 0i32..3), 1..40), cut in 0usize..40) {
            let names = ["a", "b", "c"];
            let pieces: Vec<Trace> = spans.iter().map(|(svc, id, kind)| piece(names[*svc as usize], &[(*id, *kind)])).collect();
            let mut rev = pieces.clone();
            rev.reverse();
            let cut = cut.min(pieces.len());
            let whole = combine_traces(pieces.clone(), &mut HashSet::new());
            let first = combine_traces(pieces[..cut].to_vec(), &mut HashSet::new());
            let mut seen = HashSet::new();
            let two = combine_traces([first, combine_traces(pieces[cut..].to_vec(), &mut HashSet::new())], &mut seen);
            let reversed = combine_traces(rev, &mut HashSet::new());
            let mut distinct: Vec<(u8, i32)> = spans.iter().map(|(_, id, k)| (*id, *k)).collect();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(keys(&whole).len(), distinct.len());
            prop_assert_eq!(keys(&two).len(), distinct.len());
            prop_assert_eq!(keys(&reversed).len(), distinct.len());
        }
    }
}
