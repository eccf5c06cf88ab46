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

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use tfo_influxdb::lineproto::{parse_body, Precision};

#[path = "../benches/support/body.rs"]
mod body;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by `f` on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (ALLOCS.with(Cell::get) - before, r)
}

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
