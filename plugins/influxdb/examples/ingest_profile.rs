//! Runs one phase of the line-protocol receiver on the request body of
//! `bench/scenarios.py influx` (1,000 lines, 3 tags and 3 fields a line = 3,000
//! samples) a fixed number of times, for deterministic profiles:
//! `valgrind --tool=callgrind target/release/examples/ingest_profile <phase> <n>`
//! (instructions per sample = (Ir(n) - Ir(1)) / ((n - 1) x 3,000)). Run natively it
//! prints the fastest and the median wall time of the n runs, and lines/s.
//!
//! Phases:
//! - `parse`: `lineproto::parse_body` (body -> `Batch` of `Metric`s), the batch dropped;
//! - `http`: the whole receiver: a keep-alive client POSTs the body to `/write` on
//!   loopback, hyper, parse, `emit` (which drops the batch: the host's copy of it is
//!   the host's cost), the 204 read back.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    sync::Arc,
    time::{Duration, Instant},
};

use tfo_influxdb::{
    lineproto::{parse_body, Precision},
    receiver::{EmitFn, Limits, Receiver},
};
use tfo_plugin_api::EmitStatus;

#[path = "../benches/support/body.rs"]
mod body;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let phase = args.get(1).map(String::as_str).unwrap_or("parse");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let body = body::scenario_body();
    let mut times = Vec::with_capacity(n);
    let mut sink = 0u64;
    match phase {
        "parse" => {
            for _ in 0..n {
                let t = Instant::now();
                let p = parse_body(&body, Precision::Ns, 1, &[]);
                sink += p.batch.item_count();
                drop(p);
                times.push(t.elapsed());
            }
        }
        "http" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let emit: EmitFn = Arc::new(|b| {
                drop(b);
                EmitStatus::Accepted
            });
            let limits = Limits {
                max_body: 64 << 20,
                max_requests_per_second: 0,
                max_connections: 0,
                queue_wait: Duration::ZERO,
            };
            let recv = rt
                .block_on(async { Receiver::start("127.0.0.1:0".parse().unwrap(), limits, emit) })
                .unwrap();
            let addr = recv.local_addr();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let server = std::thread::spawn(move || {
                rt.block_on(async {
                    while stop_rx.try_recv().is_err() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
                drop(recv);
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            let mut req = format!(
                "POST /write HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            let mut buf = vec![0u8; 4096];
            for _ in 0..n {
                let t = Instant::now();
                c.write_all(&req).unwrap();
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let k = c.read(&mut buf).unwrap();
                    assert!(k > 0, "connection closed");
                    got.extend_from_slice(&buf[..k]);
                }
                assert!(
                    got.starts_with(b"HTTP/1.1 204"),
                    "{}",
                    String::from_utf8_lossy(&got)
                );
                sink += body::SAMPLES;
                times.push(t.elapsed());
            }
            let _ = stop_tx.send(());
            server.join().unwrap();
        }
        other => panic!("unknown phase {other}: use parse or http"),
    }
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "{phase} x{n}: best {best:?}, median {median:?}; {:.0} lines/s and {:.0} samples/s (best); {sink} samples",
        body::LINES as f64 / best.as_secs_f64(),
        body::SAMPLES as f64 / best.as_secs_f64(),
    );
}
