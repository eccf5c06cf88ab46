//! Heap allocations per exported batch in the remote-write path (issue 9), counted
//! by a global allocator wrapper in this test binary of its own. The bounds below
//! pin the hot path: a regression that allocates per label again fails here.
//!
//! Run with `cargo test -p tfo-plugin-prometheus --test alloc_counts -- --nocapture`
//! to see the figures.

use tfo_plugin_api::testing::cpu_utilization_batch;
use tfo_prometheus::encode::{convert, remote_write, Options};

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::count_allocations as count;

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
    let (encode_allocs, series) = count(|| {
        proto.clear();
        let s = encoder.encode(&families, 1, &mut proto);
        // As `export`: the body is copied out, it moves into the request.
        let body = compressor.compress(&proto).unwrap().to_vec();
        (s, body)
    });
    let series = series.0;
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
         before (build+prost+snappy) {old_allocs} ({:.2}/point)",
        per(convert_allocs),
        per(encode_allocs),
        per(fresh_allocs),
        per(old_allocs)
    );
    // The sink's encoder and compressor reuse their buffers: once warm, a batch
    // allocates its scratch vector of point labels and the body it sends (2),
    // whatever its size.
    assert!(encode_allocs <= 2, "{encode_allocs}");
    // A fresh one grows its arenas and the row vectors (a few dozen doublings).
    assert!(per(fresh_allocs) <= 0.05, "{fresh_allocs}");
    // convert: per point its label vector and one String per label name and value
    // (3 attributes here: 7); a metric joining an existing family allocates
    // nothing of its own (was ~18 per point before names were memoised and valid
    // keys copied without sanitising).
    assert!(per(convert_allocs) <= 7.1, "{convert_allocs}");
}
