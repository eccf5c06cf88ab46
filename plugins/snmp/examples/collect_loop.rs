//! Runs the plugin's collection against SNMP agents N times, the way the agent
//! drives it (through the exported root module: `create`, `start`, `collect`,
//! `shutdown`), to profile one collection with callgrind or perf. Not a benchmark
//! by itself: it prints counts, no times.
//!
//! ```text
//! # a local agent: snmpd -f -Lo -C -c <conf with `rocommunity public 127.0.0.1`> udp:127.0.0.1:16161
//! cargo build --release -p tfo-plugin-snmp --example collect_loop
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!   target/release/examples/collect_loop 20 127.0.0.1:16161 127.0.0.1:16162
//! callgrind_annotate /tmp/cg.out | head -60
//! ```
//!
//! Arguments: the number of collections, then one or more `host:port` (v2c,
//! community `public`, `scalars: [system]`, `tables: [ifTable, ifXTable]`,
//! max-repetitions 25, as `bench/scenarios.py snmp`). The first collection is a
//! warm-up; the environment variable `SKIP_WARMUP=1` drops it.

use tfo_plugin_api::{__private::abi_stable::std_types::RResult, testing::TestHost, PointValue};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: collect_loop N host:port...");
    let targets: Vec<serde_json::Value> = args
        .map(|a| serde_json::json!({"address": a, "version": "v2c", "community": "public"}))
        .collect();
    assert!(!targets.is_empty(), "usage: collect_loop N host:port...");
    let config = serde_json::json!({
        "targets": targets,
        "max_repetitions": 25,
        "scalars": ["system"],
        "tables": ["ifTable", "ifXTable"],
    });
    let host = TestHost::default();
    let module = tfo_plugin_api::plugin_module!(tfo_snmp);
    let mut inst = match tfo_plugin_api::testing::create(module, &host, "snmp", &config.to_string())
    {
        Ok(i) => i,
        Err(e) => panic!("create failed: {e:?}"),
    };
    assert!(inst.start().is_ok());
    let mut values = 0u64;
    let warmup = std::env::var("SKIP_WARMUP").as_deref() != Ok("1");
    if warmup {
        if let RResult::ROk(b) = inst.collect() {
            drop(b.clone());
        }
    }
    // The plugin's own `snmp.collect.duration` of every target and collection (what
    // `bench/scenarios.py snmp` reports as wall per target).
    let mut durations: Vec<f64> = Vec::new();
    for _ in 0..n {
        match inst.collect() {
            // The agent clones what a plugin returns into its own memory.
            RResult::ROk(b) => {
                let b = b.clone();
                values += b.item_count();
                for m in b
                    .metrics
                    .iter()
                    .filter(|m| m.name.as_str() == "snmp.collect.duration")
                {
                    for p in m.points.iter() {
                        if let PointValue::Double(d) = p.value {
                            durations.push(d);
                        }
                    }
                }
            }
            RResult::RErr(e) => panic!("collect failed: {e}"),
        }
    }
    durations.sort_by(f64::total_cmp);
    let median_ms = durations.get(durations.len() / 2).copied().unwrap_or(0.0) * 1e3;
    println!(
        "{n} collections, {values} values, {:.1} values per collection, snmp.collect.duration median {median_ms:.2} ms",
        values as f64 / n as f64
    );
    assert!(inst.shutdown(2000).is_ok());
}
