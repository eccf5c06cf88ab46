//! A plain text rendering of a batch, for `tfo-agent run --once` when a sink has no
//! preview of its own: one line per metric point, span and log record.

use std::fmt::Write;

use tfo_plugin_api::{AnyValue, Batch, KeyValue, PointValue};

fn value(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => format!("{:?}", s.as_str()),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => format!("<{} bytes>", b.len()),
    }
}

fn attrs(a: &[KeyValue]) -> String {
    let parts: Vec<String> = a
        .iter()
        .map(|kv| format!("{}={}", kv.key, value(&kv.value)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders `batch` as text lines.
pub fn render_batch(batch: &Batch) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "resource {}", attrs(&batch.resource.attributes));
    for m in batch.metrics.iter() {
        for p in m.points.iter() {
            let v = match &p.value {
                PointValue::Double(d) => d.to_string(),
                PointValue::Int(i) => i.to_string(),
                PointValue::Histogram(h) => format!(
                    "histogram count={} bounds={:?} counts={:?}",
                    h.count,
                    h.bounds.as_slice(),
                    h.bucket_counts.as_slice()
                ),
                PointValue::Summary(q) => format!("summary count={} sum={}", q.count, q.sum),
            };
            let _ = writeln!(
                s,
                "metric {}{} {:?} {} {} {}",
                m.name,
                attrs(&p.attributes),
                m.kind,
                v,
                m.unit,
                p.time_unix_nano
            );
        }
    }
    for sp in batch.spans.iter() {
        let _ = writeln!(
            s,
            "span {} trace={} span={} {:?} {}ns {}",
            sp.name,
            hex(&sp.trace_id),
            hex(&sp.span_id),
            sp.kind,
            sp.end_time_unix_nano
                .saturating_sub(sp.start_time_unix_nano),
            attrs(&sp.attributes)
        );
    }
    for l in batch.logs.iter() {
        let _ = writeln!(
            s,
            "log {} {} {} {}",
            l.time_unix_nano,
            l.severity_text,
            value(&l.body),
            attrs(&l.attributes)
        );
    }
    s
}
