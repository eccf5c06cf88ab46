//! Runs one phase of the remote-write encoder on the 3,300-series request of
//! `benches/remote_write.rs` a fixed number of times, for deterministic profiles:
//! `valgrind --tool=callgrind target/release/examples/rw_profile <phase> <n>`
//! (instructions per series = Ir of the phase / (n x 3,300)). Run natively it
//! prints the fastest and the median wall time of the n runs.
//!
//! Phases: `direct` (`Encoder::encode_batch` + `Compressor` + copy of the body:
//! what `export` does without a scrape endpoint), `full` (convert +
//! `Encoder::encode` + `Compressor` + copy of the body, as `export` does with a
//! scrape endpoint, the families' label memory given back to a `Scratch`),
//! `convert` (the same `convert_with` + `Scratch::recycle`), `encode` (`Encoder::encode` + `Compressor` +
//! copy), `protobuf` (`Encoder::encode`), `snappy` (`Compressor`), `prost` (the
//! previous build + prost + snappy), `ingest` (what `export` does for the scrape
//! endpoint: convert, delta accumulation, update of a warm scrape store whose
//! series all exist already). `TFO_RW_SHAPE=influx` uses the influx scenario's
//! batch shape (3 metrics x 1,100 points, 3 tags) instead of the 3,300-series
//! request.

use std::time::Instant;

use tfo_prometheus::encode::{convert, convert_with, remote_write, Options, Scratch};

#[path = "../benches/support/shape.rs"]
mod shape;
use shape::batch_3300;

/// The influx scenario's batch shape: `bench,host=h{i%100},region=r{i%7},series=s{i}
/// usage_user=..,usage_system=2.5,usage_idle=96`, merged by field as the receiver
/// does: 3 metrics x 1,100 points.
fn influx_3300() -> tfo_plugin_api::Batch {
    use tfo_plugin_api::{KeyValue, Metric};
    let mut b = tfo_plugin_api::Batch::default();
    for field in ["usage_user", "usage_system", "usage_idle"] {
        let mut m = Metric::gauge(&format!("bench_{field}"), "", 1, 0.0, vec![]);
        m.points = Default::default();
        for i in 0..1100u64 {
            let p = Metric::gauge(
                "x",
                "",
                1_700_000_000_000_000_000 + i,
                (i % 97) as f64 + 0.5,
                vec![
                    KeyValue::new("host", format!("h{}", i % 100).as_str()),
                    KeyValue::new("region", format!("r{}", i % 7).as_str()),
                    KeyValue::new("series", format!("s{i}").as_str()),
                ],
            );
            m.points.push(p.points[0].clone());
        }
        b.metrics.push(m);
    }
    b
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let phase = args.get(1).map(String::as_str).unwrap_or("full");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    // `TFO_RW_SHAPE=influx`: the influx scenario's shape instead (3 fields of
    // 1,100 lines with 3 tags: 3 metrics x 1,100 points = 3,300 samples).
    let batch = match std::env::var("TFO_RW_SHAPE").as_deref() {
        Ok("influx") => influx_3300(),
        _ => batch_3300(),
    };
    let opts = Options::default();
    let families = convert(&batch, &opts).families;
    // The sink's encoder, reused between batches as `export` does.
    let mut encoder = remote_write::Encoder::default();
    let mut proto = Vec::new();
    encoder.encode(&families, 1, &mut proto);
    // The sink's compressor; `export` copies the body out of it (`to_vec`).
    let mut compressor = remote_write::Compressor::default();
    // The scrape registry, warm: every series of the batch is already in it.
    let mut accumulator = tfo_prometheus::store::Accumulator::default();
    let mut store = tfo_prometheus::store::Store::new(std::time::Duration::from_secs(3600));
    let t0 = Instant::now();
    store.update(&families, t0);
    // The sink's label scratch: each batch's families are given back to it, as
    // `export` does. Warm, as after the first batch.
    let mut scratch = Scratch::default();
    scratch.recycle(convert(&batch, &opts).families);
    let mut times = Vec::with_capacity(n);
    let mut sink = 0usize;
    for _ in 0..n {
        let t = Instant::now();
        sink += match phase {
            "full" => {
                let f = convert_with(&batch, &opts, &mut scratch).families;
                proto.clear();
                encoder.encode(&f, 1, &mut proto);
                let n = compressor.compress(&proto).unwrap().to_vec().len();
                scratch.recycle(f);
                n
            }
            "direct" => {
                // What `export` does without a scrape endpoint: the request
                // straight from the batch, deltas (none here) accumulated.
                proto.clear();
                let d = encoder
                    .encode_batch(
                        &batch,
                        &opts,
                        &mut scratch,
                        1,
                        |f| accumulator.apply(f, t0),
                        &mut proto,
                    )
                    .expect("no NUL bytes in the labels");
                accumulator.commit(d.pending);
                compressor.compress(&proto).unwrap().to_vec().len()
            }
            "convert" => {
                let f = convert_with(&batch, &opts, &mut scratch).families;
                let n = f.len();
                scratch.recycle(f);
                n
            }
            "ingest" => {
                let mut f = convert_with(&batch, &opts, &mut scratch).families;
                accumulator.commit(accumulator.apply(&mut f, t0));
                let n = store.update(&f, t0).len() + f.len();
                scratch.recycle(f);
                n
            }
            "encode" => {
                let mut p = Vec::new();
                std::mem::swap(&mut p, &mut proto);
                p.clear();
                encoder.encode(&families, 1, &mut p);
                let n = compressor.compress(&p).unwrap().to_vec().len();
                proto = p;
                n
            }
            "protobuf" => {
                proto.clear();
                encoder.encode(&families, 1, &mut proto)
            }
            "snappy" => compressor.compress(&proto).unwrap().len(),
            "prost" => {
                let r = remote_write::build(&families, 1);
                remote_write::encode_body(&r).unwrap().len()
            }
            other => panic!("unknown phase {other}"),
        };
        times.push(t.elapsed());
    }
    times.sort();
    let series = 3300.0;
    let best = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    println!(
        "{phase}: n={n} best {:.3} ms ({:.2} M series/s), median {:.3} ms ({:.2} M series/s) [{sink}]",
        best * 1e3,
        series / best / 1e6,
        median * 1e3,
        series / median / 1e6
    );
}
