//! Heap allocations of building one collection's metrics (issue 9), counted by a
//! global allocator wrapper in this test binary of its own, on the shape of
//! `bench/scenarios.py snmp`'s targets: `system` plus `ifTable` and `ifXTable`
//! with every column, here 4 interfaces.
//!
//! Built afresh, every value's point allocates what the data model owns (its
//! attribute vector and a key and a value string per attribute: target, site,
//! ifIndex, ifDescr, ifName). Written into the previous collection's batch,
//! which the host hands back after the export, what is left is per row and per
//! metric (row labels rendered, the metric index), not per value.
//!
//! `cargo test -p tfo-plugin-snmp --test alloc_counts -- --nocapture` prints the
//! figures.

use std::collections::BTreeMap;

use tfo_plugin_common::reuse::Spare;
use tfo_snmp::{
    collect::{build_metrics, Collector, CounterState, MetricSet, Plan, Vars},
    config::Config,
    encode::{Oid, Value},
};

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::count_allocations as count;

const ROWS: u32 = 4;

/// What an snmpd answers for `system`, `ifTable` (22 columns) and `ifXTable`
/// (19 columns) with `ROWS` interfaces.
fn vars() -> Vars {
    let mut v = BTreeMap::new();
    let mut put = |o: String, val: Value| {
        v.insert(o.parse::<Oid>().unwrap(), val);
    };
    put(
        "1.3.6.1.2.1.1.1.0".into(),
        Value::OctetString(b"Linux bench".to_vec()),
    );
    put("1.3.6.1.2.1.1.3.0".into(), Value::TimeTicks(12_345));
    put(
        "1.3.6.1.2.1.1.5.0".into(),
        Value::OctetString(b"host".to_vec()),
    );
    for r in 1..=ROWS {
        let name = format!("eth{r}").into_bytes();
        for c in 1..=22 {
            let val = match c {
                2 => Value::OctetString(name.clone()),
                6 => Value::OctetString(vec![0xa6, 0xc5, 0x16, 0x59, 0x9d, r as u8]),
                22 => Value::ObjectId("0.0".parse().unwrap()),
                1 | 3 | 4 | 7 | 8 => Value::Integer(i64::from(r)),
                5 => Value::Gauge32(10_000_000),
                9 => Value::TimeTicks(250),
                _ => Value::Counter32(r * 1000 + c),
            };
            put(format!("1.3.6.1.2.1.2.2.1.{c}.{r}"), val);
        }
        for c in 1..=19 {
            let val = match c {
                1 => Value::OctetString(name.clone()),
                18 => Value::OctetString(b"uplink".to_vec()),
                14 | 16 | 17 => Value::Integer(1),
                15 => Value::Gauge32(1000),
                19 => Value::TimeTicks(0),
                6..=13 => Value::Counter64(u64::from(r) << 33),
                _ => Value::Counter32(r * 100 + c),
            };
            put(format!("1.3.6.1.2.1.31.1.1.1.{c}.{r}"), val);
        }
    }
    v.into()
}

#[test]
fn a_collection_written_into_the_previous_batch_allocates_per_row_not_per_value() {
    let config: Config = serde_json::from_str(
        r#"{"targets": [{"address": "127.0.0.1:16161", "labels": {"site": "lab"}}],
            "scalars": ["system"], "tables": ["ifTable", "ifXTable"]}"#,
    )
    .unwrap();
    let settings = config.resolve().unwrap();
    let plan = Plan::new(&settings);
    let target = &settings.targets[0];
    let vars = vars();
    let mut counters = CounterState::default();
    let mut build = |out: &mut MetricSet| {
        build_metrics(&plan, target, &vars, &mut counters, 1_000, out);
    };
    // Warm: the counter state has seen every series once.
    build(&mut MetricSet::default());

    let (fresh_n, fresh) = count(|| {
        let mut out = MetricSet::default();
        build(&mut out);
        out.into_metrics()
    });
    let values: usize = fresh.iter().map(|m| m.points.len()).sum();
    let batch = Collector::batch(fresh);
    let (reused_n, _) = count(|| {
        let mut spare = Spare::default();
        spare.take_apart(batch);
        let mut out = MetricSet::reusing(spare);
        build(&mut out);
        out.into_parts()
    });
    let per_value = |n: u64| n as f64 / values as f64;
    println!(
        "snmp build, {values} values ({ROWS} rows): afresh {fresh_n} allocations ({:.2} per value), \
         into the previous batch {reused_n} ({:.2} per value)",
        per_value(fresh_n),
        per_value(reused_n)
    );
    assert!(values > 140, "{values} values: the tables were not built");
    // Afresh: at least the attribute vector and 5 key/value pairs per value.
    assert!(per_value(fresh_n) >= 11.0, "{fresh_n}");
    // Reused: what remains is per row and table (labels rendered, the row's
    // attributes built once: ~15) and per metric (its name in the index):
    // 1.6 per value here (241), against 13.3 (2,004) afresh.
    assert!(
        per_value(reused_n) < 2.0,
        "{reused_n} allocations for {values} values"
    );
    assert!(reused_n * 5 < fresh_n, "{reused_n} vs {fresh_n} afresh");
}
