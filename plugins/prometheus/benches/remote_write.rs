//! Remote-write encode throughput for Prometheus's request shape.
//!
//! Why: issue 9 asks for series/s/core of the remote-write encoder against
//! Prometheus's own figure (≈3.5 M series/s/core). A Prometheus shard sends up to
//! `max_samples_per_send` samples per request; the benchmark uses a request of
//! 3,300 series, each with `__name__` + 9 more labels (10 labels) and one sample.
//!
//! - `full`: what `export` does per batch for remote write: `convert` (agent data
//!   model -> families: name/label sanitising), `remote_write::Encoder` (labels
//!   sorted, one `TimeSeries` per label set, protobuf written directly, buffers
//!   reused between batches), Snappy;
//! - `encode`: from converted families to the compressed body;
//! - `protobuf`: the same without Snappy;
//! - `encode_prost_build` / `prost_only`: the previous path (owned `WriteRequest`
//!   + prost), kept to show the difference.
//!
//! Run: `cargo bench -p tfo-plugin-prometheus --bench remote_write`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tfo_plugin_api::{Batch, KeyValue, Metric};
use tfo_prometheus::encode::{convert, remote_write, Options};

/// 3,300 gauge series: 33 metric names x 100 label sets, 9 attributes each.
pub fn batch_3300() -> Batch {
    let mut b = Batch::default();
    for m in 0..33 {
        for i in 0..100u32 {
            b.metrics.push(Metric::gauge(
                format!("node_benchmark_metric_{m}").as_str(),
                "",
                1_700_000_000_000_000_000 + i as u64,
                (m * 100 + i as usize) as f64 * 0.25,
                vec![
                    KeyValue::new("cluster", "prod-eu-west-1"),
                    KeyValue::new("namespace", "monitoring"),
                    KeyValue::new("pod", format!("node-exporter-{}", i % 17).as_str()),
                    KeyValue::new("instance", format!("10.0.{}.{}:9100", i / 50, i).as_str()),
                    KeyValue::new("job", "node-exporter"),
                    KeyValue::new(
                        "device",
                        format!("sd{}", (b'a' + (i % 26) as u8) as char).as_str(),
                    ),
                    KeyValue::new("mode", "idle"),
                    KeyValue::new("cpu", (i % 8) as i64),
                    KeyValue::new("series_id", i as i64),
                ],
            ));
        }
    }
    b
}

fn bench(c: &mut Criterion) {
    let batch = batch_3300();
    let opts = Options::default();
    let families = convert(&batch, &opts).families;
    let request = remote_write::build(&families, 1_700_000_000_000);
    assert_eq!(request.timeseries.len(), 3300);
    assert!(request.timeseries.iter().all(|t| t.labels.len() == 10));

    let mut g = c.benchmark_group("remote_write_3300");
    g.throughput(Throughput::Elements(3300));
    let mut compressor = remote_write::Compressor::default();
    // The sink's encoder, reused between batches as `export` does.
    let mut encoder = remote_write::Encoder::default();
    let mut proto = Vec::new();
    // What `export` does per batch.
    g.bench_function("full", |b| {
        b.iter(|| {
            let f = convert(&batch, &opts).families;
            proto.clear();
            encoder.encode(&f, 1_700_000_000_000, &mut proto);
            // The body moves into the request: `export` copies it out.
            compressor.compress(&proto).unwrap().to_vec()
        })
    });
    // From converted families: group, sort, protobuf, Snappy.
    g.bench_function("encode", |b| {
        b.iter(|| {
            proto.clear();
            encoder.encode(&families, 1_700_000_000_000, &mut proto);
            compressor.compress(&proto).unwrap().to_vec()
        })
    });
    // The same without Snappy: protobuf of 3,300 series only.
    g.bench_function("protobuf", |b| {
        b.iter(|| {
            proto.clear();
            encoder.encode(&families, 1_700_000_000_000, &mut proto)
        })
    });
    // Before: owned `WriteRequest` (labels cloned) + prost + Snappy.
    g.bench_function("encode_prost_build", |b| {
        b.iter(|| {
            let r = remote_write::build(&families, 1_700_000_000_000);
            remote_write::encode_body(&r).unwrap()
        })
    });
    // prost + Snappy of an already built `WriteRequest`.
    g.bench_function("prost_only", |b| {
        b.iter(|| remote_write::encode_body(&request).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
