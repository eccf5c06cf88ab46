//! Runs one phase of the remote-write encoder on the 3,300-series request of
//! `benches/remote_write.rs` a fixed number of times, for deterministic profiles:
//! `valgrind --tool=callgrind target/release/examples/rw_profile <phase> <n>`
//! (instructions per series = Ir of the phase / (n x 3,300)). Run natively it
//! prints the fastest and the median wall time of the n runs.
//!
//! Phases: `full` (convert + `Encoder::encode` + `Compressor` + copy of the body,
//! as `export` does), `convert`, `encode` (`Encoder::encode` + `Compressor` +
//! copy), `protobuf` (`Encoder::encode`), `snappy` (`Compressor`), `prost` (the
//! previous build + prost + snappy).

use std::time::Instant;

use tfo_prometheus::encode::{convert, remote_write, Options};

#[path = "../benches/support/shape.rs"]
mod shape;
use shape::batch_3300;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let phase = args.get(1).map(String::as_str).unwrap_or("full");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let batch = batch_3300();
    let opts = Options::default();
    let families = convert(&batch, &opts).families;
    // The sink's encoder, reused between batches as `export` does.
    let mut encoder = remote_write::Encoder::default();
    let mut proto = Vec::new();
    encoder.encode(&families, 1, &mut proto);
    // The sink's compressor; `export` copies the body out of it (`to_vec`).
    let mut compressor = remote_write::Compressor::default();
    let mut times = Vec::with_capacity(n);
    let mut sink = 0usize;
    for _ in 0..n {
        let t = Instant::now();
        sink += match phase {
            "full" => {
                let f = convert(&batch, &opts).families;
                proto.clear();
                encoder.encode(&f, 1, &mut proto);
                compressor.compress(&proto).unwrap().to_vec().len()
            }
            "convert" => convert(&batch, &opts).families.len(),
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
