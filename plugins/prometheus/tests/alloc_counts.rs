//! Heap allocations per exported batch in the remote-write path (issue 9), counted
//! by a global allocator wrapper in this test binary of its own. The bounds below
//! pin the hot path: a regression that allocates per label again fails here.
//!
//! Run with `cargo test -p tfo-plugin-prometheus --test alloc_counts -- --nocapture`
//! to see the figures.

use std::time::{Duration, Instant};
use tfo_plugin_api::testing::cpu_utilization_batch;

use tfo_prometheus::{
    encode::{convert, convert_with, remote_write, Options, Scratch},
    store::{Accumulator, Store},
};

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::count_allocations as count;

/// The protobuf `WriteRequest` of `families`, by a fresh encoder.
fn proto_of(families: &[tfo_prometheus::encode::Family]) -> Vec<u8> {
    let mut out = Vec::new();
    remote_write::encode_families(families, 1, &mut out);
    out
}

#[test]
fn allocations_per_batch() {
    let batch = cpu_utilization_batch(1000);
    let n = batch.item_count();
    let opts = Options::default();
    let mut proto = Vec::new();
    let mut compressor = remote_write::Compressor::default();
    let mut encoder = remote_write::Encoder::default();
    // Warm the reused buffers once, as after the first batch.
    let families = convert(&batch, &opts).families;
    encoder.encode(&families, 1, &mut proto);
    compressor.compress(&proto).unwrap();

    let (convert_allocs, families) = count(|| convert(&batch, &opts).families);
    // As `export` converts: with the sink's scratch, warm with the previous
    // batches' families (two: a recycled string may need to grow once, when the
    // sort moved a longer label into it; a scratch keeps what a batch of its own
    // took, so both warm-up batches are converted with it).
    let mut scratch = Scratch::default();
    for _ in 0..2 {
        let warm_up = convert_with(&batch, &opts, &mut scratch).families;
        scratch.recycle(warm_up);
    }
    let (scratch_allocs, warm) = count(|| convert_with(&batch, &opts, &mut scratch).families);
    assert_eq!(warm, families);
    let (recycle_allocs, ()) = count(|| scratch.recycle(warm));
    let (encode_allocs, series) = count(|| {
        proto.clear();
        let s = encoder.encode(&families, 1, &mut proto);
        // As `export`: the body is copied out, it moves into the request.
        let body = compressor.compress(&proto).unwrap().to_vec();
        (s, body)
    });
    let series = series.0;
    // Without a scrape endpoint `export` encodes straight from the batch
    // (`Encoder::encode_batch`), nothing accumulated here; warm as after the
    // first batch.
    let mut direct = |encoder: &mut remote_write::Encoder, scratch: &mut Scratch| {
        proto.clear();
        let d = encoder
            .encode_batch(&batch, &opts, scratch, 1, |_| (), &mut proto)
            .expect("no NUL bytes");
        let body = compressor.compress(&proto).unwrap().to_vec();
        (d.series, body)
    };
    let mut direct_encoder = remote_write::Encoder::default();
    let mut direct_scratch = Scratch::default();
    direct(&mut direct_encoder, &mut direct_scratch);
    let (direct_allocs, (direct_series, direct_body)) =
        count(|| direct(&mut direct_encoder, &mut direct_scratch));
    assert_eq!(direct_series, series);
    // The same series (in order of first appearance instead of label order).
    let sorted = |mut r: remote_write::WriteRequest| {
        r.timeseries.sort_by(|a, b| a.labels.cmp(&b.labels));
        r
    };
    let want =
        <remote_write::WriteRequest as prost::Message>::decode(proto_of(&families).as_slice())
            .unwrap();
    assert_eq!(
        sorted(remote_write::decode_body(&direct_body).unwrap()),
        want
    );
    // A one-off encoder (`encode_families`): its buffers are grown afresh.
    let (fresh_allocs, _) = count(|| {
        let mut out = Vec::new();
        remote_write::encode_families(&families, 1, &mut out)
    });
    let (old_allocs, _) = count(|| {
        let r = remote_write::build(&families, 1);
        remote_write::encode_body(&r).unwrap()
    });
    assert_eq!(series as u64, n);
    let per = |a: u64| a as f64 / n as f64;
    println!(
        "prometheus remote write, {n} points x 3 attributes: convert {convert_allocs} ({:.2}/point), \
         Encoder::encode+Compressor+body {encode_allocs} ({:.2}/point), one-off encode_families {fresh_allocs} ({:.2}/point), \
         before (build+prost+snappy) {old_allocs} ({:.2}/point); \
         convert_with a warm scratch {scratch_allocs} ({:.3}/point), recycle {recycle_allocs}; \
         without a scrape endpoint (Encoder::encode_batch+Compressor+body) {direct_allocs} ({:.3}/point)",
        per(convert_allocs),
        per(encode_allocs),
        per(fresh_allocs),
        per(old_allocs),
        per(scratch_allocs),
        per(direct_allocs)
    );
    // The sink's encoder and compressor reuse their buffers (the vector of a
    // point's labels included): once warm, a batch allocates the body it sends
    // (1), whatever its size.
    assert!(encode_allocs <= 1, "{encode_allocs}");
    // Without a scrape endpoint (the request straight from the batch, no
    // families): per batch, not per point; the body, the family's names (the
    // name and unit mapping, the name kept in the family and its index) and
    // the family vector (was 14 for convert_with + 2 for encoding = 16).
    assert!(direct_allocs <= 14, "{direct_allocs}");
    // A fresh one grows its arenas and the row vectors (a few dozen doublings).
    assert!(per(fresh_allocs) <= 0.05, "{fresh_allocs}");
    // convert: per point its label vector and one String per label name and value
    // (3 attributes here: 7); a metric joining an existing family allocates
    // nothing of its own (was ~18 per point before names were memoised and valid
    // keys copied without sanitising).
    assert!(per(convert_allocs) <= 7.1, "{convert_allocs}");
    // With the sink's scratch: the label strings and vectors are recycled; what is
    // left is per batch (the families map, the families' point vectors, the
    // result vector), not per point.
    assert!(scratch_allocs <= 14, "{scratch_allocs}");
    assert_eq!(recycle_allocs, 0);
}

/// The scrape endpoint's ingest as `export` does it (convert with the sink's
/// scratch, delta accumulation, store update, labels recycled) for a batch whose
/// series are all in the store already: nothing per point.
#[test]
fn scrape_ingest_allocations_per_batch() {
    scrape_ingest(cpu_utilization_batch(1000), "3 attributes");
}

/// The same with attribute keys that are not label names (`snmp.target`,
/// `system.cpu`: dots become `_`), the sanitising path: nothing per point either
/// (it allocated a label vector and two strings per label).
#[test]
fn scrape_ingest_allocations_per_batch_with_keys_to_sanitise() {
    let mut batch = cpu_utilization_batch(1000);
    for m in batch.metrics.iter_mut() {
        for p in m.points.iter_mut() {
            for kv in p.attributes.iter_mut() {
                kv.key = format!("system.{}", kv.key.as_str()).as_str().into();
            }
        }
    }
    scrape_ingest(batch, "3 attributes with dots");
}

fn scrape_ingest(batch: tfo_plugin_api::Batch, what: &str) {
    let n = batch.item_count();
    let opts = Options::default();
    let t0 = Instant::now();
    let mut scratch = Scratch::default();
    let mut accumulator = Accumulator::default();
    let mut store = Store::new(Duration::from_secs(3600));
    let mut ingest = |scratch: &mut Scratch| {
        let mut families = convert_with(&batch, &opts, scratch).families;
        accumulator.commit(accumulator.apply(&mut families, t0));
        let conflicts = store.update(&families, t0);
        scratch.recycle(families);
        conflicts.len()
    };
    // The first batch creates the series; the second warms the scratch.
    ingest(&mut scratch);
    ingest(&mut scratch);
    let (allocs, conflicts) = count(|| ingest(&mut scratch));
    assert_eq!(conflicts, 0);
    assert_eq!(store.series_count() as u64, n);
    println!(
        "prometheus scrape ingest, {n} points x {what}, warm store: {allocs} ({:.3}/point)",
        allocs as f64 / n as f64
    );
    // Before: 7 per point in convert plus two copies of every label set per point
    // in the store (~21 per point).
    assert!(allocs <= 14, "{allocs}");
}
