//! Prints what the plugin would collect on this machine, one line per point:
//! `cargo run -p tfo-plugin-system --example dump [-- '<json config>']`. Two
//! collections are made (CPU utilization needs a previous one); the second is shown.

use tfo_plugin_api::{AnyValue, PointValue};
use tfo_system::{Config, SystemCollector};

fn main() {
    let json = std::env::args().nth(1).unwrap_or_else(|| "{}".into());
    let config: Config = match serde_json::from_str(&json) {
        Ok(c) => c,
        Err(e) => return eprintln!("config: {e}"),
    };
    let settings = match config.resolve() {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("config: {}: {}", e.path, e.message);
            }
            return;
        }
    };
    let mut c = SystemCollector::new(settings).expect("hostname");
    let _ = c.collect();
    // Let some CPU ticks elapse so utilization has a delta to show.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let batch = match c.collect() {
        Ok(b) => b,
        Err(e) => return eprintln!("collect: {e}"),
    };
    let took = started.elapsed();
    for kv in batch.resource.attributes.iter() {
        println!("resource {}={:?}", kv.key, kv.value);
    }
    for m in batch.metrics.iter() {
        for p in m.points.iter() {
            let attrs: Vec<String> = p
                .attributes
                .iter()
                .map(|kv| match &kv.value {
                    AnyValue::Str(s) => format!("{}={s}", kv.key),
                    v => format!("{}={v:?}", kv.key),
                })
                .collect();
            let v = match &p.value {
                PointValue::Int(i) => i.to_string(),
                PointValue::Double(d) => d.to_string(),
                other => format!("{other:?}"),
            };
            println!("{} [{}] {{{}}} {v}", m.name, m.unit, attrs.join(","));
        }
    }
    eprintln!(
        "{} metrics, {} points, collected in {took:?}; problems: {:?}",
        batch.metrics.len(),
        batch.item_count(),
        c.problems()
    );
}
