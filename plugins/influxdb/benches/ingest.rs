//! The line-protocol receiver's ingest path on the body of `bench/scenarios.py
//! influx` (1,000 lines, 3 tags and 3 float fields a line = 3,000 samples).
//!
//! Why: issue 9's "Influx line protocol in -> remote write out" row compares
//! samples per CPU-second with vmagent; this is the receiver's share of it.
//!
//! - `parse_body`: body -> `Batch` of `Metric`s (what the receiver emits), the
//!   batch dropped;
//! - `parse_body_reusing`: the same into the previous iteration's batch, as the
//!   receiver does with the batches the host hands back after their export
//!   (ABI 1.2): no allocation and no free per string;
//! - `parse_lines_only`: the shared parser alone (`parse_line_into` over every
//!   line, nothing built), the floor of the mapping.
//!
//! Run: `cargo bench -p tfo-plugin-influxdb --bench ingest`. For instruction
//! counts use `examples/ingest_profile.rs` under callgrind.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tfo_influxdb::lineproto::{parse_body, parse_body_reusing, parse_line_into, Line, Precision};

#[path = "support/body.rs"]
mod body;

fn ingest(c: &mut Criterion) {
    let data = body::scenario_body();
    let mut g = c.benchmark_group("influx_ingest_1000_lines");
    g.throughput(Throughput::Elements(body::SAMPLES));
    g.bench_function("parse_body", |b| {
        b.iter(|| parse_body(std::hint::black_box(&data), Precision::Ns, 1, &[]))
    });
    let mut earlier = Some(parse_body(&data, Precision::Ns, 1, &[]).batch);
    g.bench_function("parse_body_reusing", |b| {
        b.iter(|| {
            let parsed = parse_body_reusing(
                std::hint::black_box(&data),
                Precision::Ns,
                1,
                &[],
                earlier.take(),
            );
            earlier = Some(parsed.batch);
        })
    });
    g.bench_function("parse_lines_only", |b| {
        b.iter(|| {
            let mut line = Line::default();
            let mut fields = 0;
            for raw in std::hint::black_box(&data).split(|b| *b == b'\n') {
                if parse_line_into(raw, &mut line).unwrap_or(false) {
                    fields += line.fields.len();
                }
            }
            fields
        })
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
