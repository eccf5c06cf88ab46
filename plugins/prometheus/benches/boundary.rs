//! "The same exporter statically linked vs loaded as a plugin — ns per 1,000-item
//! batch [≤ 2% overhead]" (issue 9), with a real exporter: the prometheus sink's
//! `export` (conversion to Prometheus families, delta accumulation, update of the
//! scrape store: the whole export path minus network I/O; the scrape endpoint is
//! configured but never started, so no port is bound).
//!
//! - `prometheus_export_1000/static`: the plugin's root module linked into this
//!   binary (`plugin_module!(tfo_prometheus)`), instance created and called through
//!   the same `create`/`export` entry points the host uses, on this thread;
//! - `prometheus_export_1000/dlopen`: `libtfo_prometheus.so` loaded by the host's
//!   loader (shadow copy, dlopen, ABI checks), called the same way on this thread;
//! - `prometheus_export_1000/host_path`: the `.so` instance on its own thread, each
//!   batch handed over and answered as the sink runner does (channel + oneshot).
//!
//! Before the criterion groups it prints the medians of interleaved rounds
//! (`TFO_BENCH_ROUNDS`, default 1,000), the fairer comparison on a busy machine.
//!
//! Run: `cargo build --release -p tfo-plugin-prometheus && cargo bench -p
//! tfo-plugin-prometheus --bench boundary` (the `.so` must be the release build of
//! the same source as this binary).

use std::{path::PathBuf, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion};
use tfo_agent::plugin::{
    files, host_services::InstanceServices, instance::InstanceWorker, library,
};
use tfo_plugin_api::{__private::abi_stable::std_types::RResult, Batch, KeyValue, Metric};

const CONFIG: &str = r#"{"listen": "127.0.0.1:0"}"#;

fn so_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    let p = target.join("release/libtfo_prometheus.so");
    assert!(
        p.exists(),
        "{} missing: build it with cargo build --release -p tfo-plugin-prometheus",
        p.display()
    );
    p
}

/// The plugin-boundary bench's batch: 1,000 gauges with two attributes.
fn batch_1000() -> Batch {
    let mut b = Batch::default();
    for i in 0..1000 {
        b.metrics.push(Metric::gauge(
            "system.cpu.utilization",
            "1",
            1_700_000_000_000_000_000,
            i as f64 * 0.5,
            vec![
                KeyValue::new("cpu", i as i64),
                KeyValue::new("state", "user"),
            ],
        ));
    }
    b
}

fn export(c: &mut Criterion) {
    let batch = Arc::new(batch_1000());
    // The host's worker takes a batch as the pipeline holds it (its own memory here).
    let held = Arc::new(tfo_agent::pipeline::HeldBatch::own((*batch).clone()));
    let host = InstanceServices::handle("prometheus", "bench", None, Default::default());

    let module = tfo_plugin_api::plugin_module!(tfo_prometheus);
    let mut static_inst = match (module.create())(host.clone(), "bench".into(), CONFIG.into()) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create: {e:?}"),
    };

    let shadow = tempfile::tempdir().unwrap();
    let file = files::trust(&so_path(), None).unwrap();
    let lib = Arc::new(library::load(&file, shadow.path()).unwrap());
    let mut so_inst = match (lib.module().create())(host.clone(), "bench".into(), CONFIG.into()) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create: {e:?}"),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let worker = rt
        .block_on(InstanceWorker::spawn(
            lib.clone(),
            "bench-worker",
            CONFIG.into(),
            host.clone(),
        ))
        .unwrap();

    // Interleaved rounds (static, dlopen, host_path, static, ...): on a shared,
    // noisy machine, drift hits the three alike, unlike criterion's one group
    // after the other. Medians and overheads printed first.
    let rounds: usize = std::env::var("TFO_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut t = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        let s = std::time::Instant::now();
        let _ = std::hint::black_box(static_inst.export(&batch));
        t[0].push(s.elapsed());
        let s = std::time::Instant::now();
        let _ = std::hint::black_box(so_inst.export(&batch));
        t[1].push(s.elapsed());
        let s = std::time::Instant::now();
        let _ = rt.block_on(worker.export(held.clone(), Duration::from_secs(5)));
        t[2].push(s.elapsed());
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let (s, d, h) = (med(&mut t[0]), med(&mut t[1]), med(&mut t[2]));
    println!(
        "interleaved, {rounds} rounds, medians: static {s:.1} us, dlopen {d:.1} us ({:+.2}%), \
         host_path {h:.1} us ({:+.2}%)",
        (d / s - 1.0) * 100.0,
        (h / s - 1.0) * 100.0
    );

    let mut g = c.benchmark_group("prometheus_export_1000");
    g.bench_function("static", |b| {
        b.iter(|| match static_inst.export(&batch) {
            RResult::ROk(ok) => ok.accepted,
            RResult::RErr(e) => panic!("{e}"),
        })
    });
    g.bench_function("dlopen", |b| {
        b.iter(|| match so_inst.export(&batch) {
            RResult::ROk(ok) => ok.accepted,
            RResult::RErr(e) => panic!("{e}"),
        })
    });
    g.bench_function("host_path", |b| {
        b.iter(|| {
            rt.block_on(worker.export(held.clone(), Duration::from_secs(5)))
                .unwrap()
        })
    });
    g.finish();
    rt.block_on(worker.retire(Duration::from_secs(5)));
    static_inst.shutdown(1000);
    so_inst.shutdown(1000);
    drop(so_inst);
}

criterion_group!(benches, export);
criterion_main!(benches);
