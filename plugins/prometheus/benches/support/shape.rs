//! The request shape of a Prometheus remote-write shard, shared by the criterion
//! bench (`benches/remote_write.rs`) and the profiling example
//! (`examples/rw_profile.rs`) so both measure the same input.

use tfo_plugin_api::{Batch, KeyValue, Metric};

/// 3,300 gauge series: 33 metric names x 100 label sets, 9 attributes each.
pub fn batch_3300() -> Batch {
    let mut b = Batch::default();
    for m in 0..33 {
        for i in 0..100u32 {
            b.metrics.push(Metric::gauge(
                format!("node_benchmark_metric_{m}").as_str(),
                "",
                1_700_000_000_000_000_000 + i as u64,
                (m * 100 + i as usize) as f64 * 0.25,
                vec![
                    KeyValue::new("cluster", "prod-eu-west-1"),
                    KeyValue::new("namespace", "monitoring"),
                    KeyValue::new("pod", format!("node-exporter-{}", i % 17).as_str()),
                    KeyValue::new("instance", format!("10.0.{}.{}:9100", i / 50, i).as_str()),
                    KeyValue::new("job", "node-exporter"),
                    KeyValue::new(
                        "device",
                        format!("sd{}", (b'a' + (i % 26) as u8) as char).as_str(),
                    ),
                    KeyValue::new("mode", "idle"),
                    KeyValue::new("cpu", (i % 8) as i64),
                    KeyValue::new("series_id", i as i64),
                ],
            ));
        }
    }
    b
}
