//! The request body `bench/scenarios.py influx` posts, shared by the ingest bench,
//! `examples/ingest_profile.rs` and `tests/alloc_counts.rs`.

/// Lines in [`scenario_body`].
pub const LINES: u64 = 1000;
/// Samples in [`scenario_body`] (3 numeric fields a line).
pub const SAMPLES: u64 = 3 * LINES;

/// 1,000 lines of `bench,host=h{i%100},region=r{i%7},series=s{i}
/// usage_user={i%97}.5,usage_system=2.5,usage_idle=96 <ns>`: one measurement,
/// three tags, three float fields, a nanosecond timestamp (fixed here, the time
/// of the run in the scenario).
pub fn scenario_body() -> Vec<u8> {
    let now = 1_764_000_000_000_000_000u64;
    let mut s = String::new();
    for i in 0..LINES {
        s.push_str(&format!(
            "bench,host=h{},region=r{},series=s{i} usage_user={}.5,usage_system=2.5,usage_idle=96 {now}\n",
            i % 100,
            i % 7,
            i % 97
        ));
    }
    s.into_bytes()
}
