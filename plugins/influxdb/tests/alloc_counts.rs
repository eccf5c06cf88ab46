//! Heap allocations per request body in the receiver's ingest path (issue 9),
//! counted by a global allocator wrapper in this test binary of its own, on the
//! body of `bench/scenarios.py influx` (1,000 lines, 3 tags and 3 fields a line).
//!
//! What the data model owns per sample (one point): its attribute vector and, per
//! tag, a key and a value string: 7 allocations. Everything else (parsing, names,
//! lookups) must stay below one allocation per line. Before the in-place parser:
//! 49,038 per body (16.3 per sample); now 21,044 (7.01).
//!
//! Run with `cargo test -p tfo-plugin-influxdb --test alloc_counts -- --nocapture`
//! to see the figures.

use tfo_influxdb::lineproto::{parse_body, Precision};

#[path = "../benches/support/body.rs"]
mod body;

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::count_allocations as count;

#[test]
fn parse_body_allocates_what_the_data_model_owns_and_little_more() {
    let data = body::scenario_body();
    let (n, parsed) = count(|| parse_body(&data, Precision::Ns, 1, &[]));
    assert_eq!(parsed.batch.item_count(), body::SAMPLES);
    assert_eq!(parsed.lines_bad, 0);
    let owned = body::SAMPLES * 7;
    println!(
        "parse_body, {} samples: {n} allocations ({:.2} per sample; the data model owns {owned})",
        body::SAMPLES,
        n as f64 / body::SAMPLES as f64
    );
    assert!(n >= owned, "{n}");
    assert!(
        n <= owned + body::LINES / 10,
        "{n} allocations for {owned} owned"
    );
}

#[test]
fn escaped_names_cost_one_string_each() {
    // Escapes make the parser copy a name; still nothing per line beyond that.
    let mut data = Vec::new();
    for i in 0..100 {
        data.extend_from_slice(format!("m\\ x,t\\=k=v{i} f=1\n").as_bytes());
    }
    let (n, parsed) = count(|| parse_body(&data, Precision::Ns, 1, &[]));
    assert_eq!(parsed.batch.item_count(), 100);
    // Per line: measurement and tag key unescaped (2), the point's attributes (3).
    println!("parse_body, 100 escaped lines: {n} allocations");
    assert!(n <= 100 * 5 + 20, "{n}");
}
