//! Remote-write encode throughput for Prometheus's request shape.
//!
//! Why: issue 9 asks for series/s/core of the remote-write encoder against
//! Prometheus's own figure (≈3.5 M series/s/core). A Prometheus shard sends up to
//! `max_samples_per_send` samples per request; the benchmark uses a request of
//! 3,300 series, each with `__name__` + 9 more labels (10 labels) and one sample.
//!
//! - `direct`: what `export` does per batch for remote write without a scrape
//!   endpoint: `Encoder::encode_batch` (the request straight from the batch, no
//!   families; series grouped by a hash table, not sorted), Snappy;
//! - `full`: what `export` does per batch for remote write with a scrape
//!   endpoint: `convert` (agent data model -> families: name/label
//!   sanitising), `remote_write::Encoder` (labels sorted, one `TimeSeries` per
//!   label set, protobuf written directly, buffers reused between batches),
//!   Snappy;
//! - `encode`: from converted families to the compressed body;
//! - `protobuf`: the same without Snappy;
//! - `ingest`: what `export` does per batch for the scrape endpoint: `convert`,
//!   delta accumulation, update of a warm scrape store (every series exists);
//! - `encode_prost_build` / `prost_only`: the previous path (owned `WriteRequest`
//!   + prost), kept to show the difference.
//!
//! Run: `cargo bench -p tfo-plugin-prometheus --bench remote_write`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tfo_prometheus::encode::{convert, convert_with, remote_write, Options, Scratch};

#[path = "support/shape.rs"]
mod shape;
use shape::batch_3300;

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
    // The sink's label scratch: `export` gives each batch's families back to it.
    let mut scratch = Scratch::default();
    // What `export` does per batch without a scrape endpoint.
    let mut direct_encoder = remote_write::Encoder::default();
    let mut direct_scratch = Scratch::default();
    let mut direct_proto = Vec::new();
    g.bench_function("direct", |b| {
        b.iter(|| {
            direct_proto.clear();
            direct_encoder
                .encode_batch(
                    &batch,
                    &opts,
                    &mut direct_scratch,
                    1_700_000_000_000,
                    |_| (),
                    &mut direct_proto,
                )
                .expect("labels fit u32 offsets");
            compressor.compress(&direct_proto).unwrap().to_vec()
        })
    });
    // What `export` does per batch with a scrape endpoint (the store update
    // aside, see `ingest`).
    g.bench_function("full", |b| {
        b.iter(|| {
            let f = convert_with(&batch, &opts, &mut scratch).families;
            proto.clear();
            encoder.encode(&f, 1_700_000_000_000, &mut proto);
            // The body moves into the request: `export` copies it out.
            let body = compressor.compress(&proto).unwrap().to_vec();
            scratch.recycle(f);
            body
        })
    });
    // From converted families: group, sort, protobuf, Snappy.
    // What `export` does per batch for the scrape endpoint (warm store).
    let mut accumulator = tfo_prometheus::store::Accumulator::default();
    let mut store = tfo_prometheus::store::Store::new(std::time::Duration::from_secs(3600));
    let t0 = std::time::Instant::now();
    store.update(&families, t0);
    g.bench_function("ingest", |b| {
        b.iter(|| {
            let mut f = convert_with(&batch, &opts, &mut scratch).families;
            accumulator.commit(accumulator.apply(&mut f, t0));
            let n = store.update(&f, t0).len();
            scratch.recycle(f);
            n
        })
    });
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
