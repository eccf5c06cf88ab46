//! InfluxDB line protocol request bodies, as the influxdb plugin's receiver parses
//! them (`POST /write`, `/api/v2/write`): must never panic, whatever the bytes and
//! the precision.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tfo_influxdb::lineproto::{parse_body, Precision};

fuzz_target!(|data: &[u8]| {
    let extra = [("db".to_string(), "fuzz".to_string())];
    let precision = match data.first().map(|b| b % 6) {
        Some(0) => Precision::Ns,
        Some(1) => Precision::Us,
        Some(2) => Precision::Ms,
        Some(3) => Precision::S,
        Some(4) => Precision::M,
        _ => Precision::H,
    };
    let parsed = parse_body(data, precision, 1_700_000_000_000_000_000, &extra);
    // Every counted line is either taken or reported.
    assert!(parsed.errors.len() as u64 <= parsed.lines_bad);
});
