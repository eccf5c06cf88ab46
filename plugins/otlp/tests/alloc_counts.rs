//! Heap allocations per exported batch of the OTLP exporter's encoder (issue 9):
//! batch -> `ExportMetricsServiceRequest` (prost's owned messages) -> protobuf,
//! counted by a global allocator wrapper in this test binary of its own.
//!
//! Run with `cargo test -p tfo-plugin-otlp --test alloc_counts -- --nocapture`.

use prost::Message as _;
use tfo_plugin_api::{Batch, KeyValue, Metric};

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::count_allocations as count;

/// The plugin-boundary bench's batch: 1,000 gauges, three attributes each.
fn batch_1000() -> Batch {
    let mut b = Batch::default();
    for i in 0..1000 {
        b.metrics.push(Metric::gauge(
            "system.cpu.utilization",
            "1",
            1_700_000_000_000_000_000,
            i as f64 * 0.5,
            vec![
                KeyValue::new("cpu", i as i64 % 8),
                KeyValue::new("state", "user"),
                KeyValue::new("i", i as i64),
            ],
        ));
    }
    b
}

#[test]
fn allocations_per_batch() {
    let batch = batch_1000();
    let n = batch.item_count();
    let (convert_allocs, req) = count(|| tfo_plugin_common::otlp::metrics(&batch).0.unwrap());
    let mut buf = Vec::with_capacity(req.encoded_len());
    let (encode_allocs, _) = count(|| {
        buf.clear();
        req.encode(&mut buf).unwrap();
    });
    let per = |a: u64| a as f64 / n as f64;
    println!(
        "otlp metrics, {n} points x 3 attributes: to prost messages {convert_allocs} ({:.2}/point), \
         protobuf encode into a reused buffer {encode_allocs} ({:.2}/point)",
        per(convert_allocs),
        per(encode_allocs)
    );
    // prost's messages own their strings: per point the attribute vector, per
    // attribute the key and (string) value, per metric name/description/unit.
    assert!(per(convert_allocs) <= 12.0, "{convert_allocs}");
    assert_eq!(encode_allocs, 0);
}
