//! Heap allocations per exported batch of the OTLP exporter's encoder (issue 9):
//! batch -> `ExportMetricsServiceRequest` (prost's owned messages) -> protobuf,
//! counted by a global allocator wrapper in this test binary of its own.
//!
//! Run with `cargo test -p tfo-plugin-otlp --test alloc_counts -- --nocapture`.

use prost::Message as _;
use tfo_plugin_api::testing::cpu_utilization_batch;

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::count_allocations as count;

#[test]
fn allocations_per_batch() {
    let batch = cpu_utilization_batch(1000);
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
