//! What the plugin boundary costs.
//!
//! - `export_1000/direct`: the bench-sink's checksum called as a Rust function;
//! - `export_1000/abi`: the same code through the plugin's `export` (sabi_trait
//!   call, panic guard, host log bridge), on this thread;
//! - `export_1000/host_path`: the full host path, a hop to the instance thread and
//!   back (what the sink runner does per batch);
//! - `load/...`: shadow copy + dlopen + version and layout checks, and + create +
//!   retire of one instance.
//!
//! Run with `scripts/bench.sh` (release build of the fixture first).

use std::{path::PathBuf, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tfo_agent::plugin::{
    files, host_services::InstanceServices, instance::InstanceWorker, library,
};
use tfo_plugin_api::{Batch, KeyValue, Metric};

fn bench_sink() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let p = target.join("release/libtfo_bench_sink.so");
    assert!(p.exists(), "{} missing: run scripts/bench.sh", p.display());
    p
}

fn batch_1000() -> Batch {
    let mut b = Batch::default();
    for i in 0..1000 {
        b.metrics.push(Metric::gauge(
            "system.cpu.utilization",
            "1",
            1_700_000_000_000_000_000,
            i as f64 * 0.5,
            vec![
                KeyValue::new("cpu", i as i64 % 8),
                KeyValue::new("state", "user"),
            ],
        ));
    }
    b
}

fn export(c: &mut Criterion) {
    let shadow = tempfile::tempdir().unwrap();
    let file = files::trust(&bench_sink(), None).unwrap();
    let lib = Arc::new(library::load(&file, shadow.path()).unwrap());
    let host = InstanceServices::handle("bench-sink", "bench", None, Default::default());
    let create = lib.module().create();
    let mut instance = create(host.clone(), "bench".into(), "{}".into()).unwrap();
    let batch = Arc::new(batch_1000());

    let mut g = c.benchmark_group("export_1000");
    g.bench_function("direct", |b| {
        b.iter(|| std::hint::black_box(tfo_bench_sink::checksum(&batch)))
    });
    g.bench_function("abi", |b| {
        b.iter(|| std::hint::black_box(instance.export(&batch)))
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let worker = rt
        .block_on(InstanceWorker::spawn(
            lib.clone(),
            "bench-worker",
            "{}".into(),
            host.clone(),
        ))
        .unwrap();
    g.bench_function("host_path", |b| {
        b.iter(|| {
            rt.block_on(worker.export(batch.clone(), Duration::from_secs(5)))
                .unwrap()
        })
    });
    g.finish();
    rt.block_on(worker.retire(Duration::from_secs(5)));
    instance.shutdown(1000);
    drop(instance);
}

fn load(c: &mut Criterion) {
    let shadow = tempfile::tempdir().unwrap();
    let file = files::trust(&bench_sink(), None).unwrap();
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("copy_dlopen_check_unload", |b| {
        b.iter_batched(
            || (),
            |_| library::load(&file, shadow.path()).unwrap().unload(),
            BatchSize::PerIteration,
        )
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("copy_dlopen_check_create_retire_unload", |b| {
        b.iter(|| {
            let lib = Arc::new(library::load(&file, shadow.path()).unwrap());
            let host = InstanceServices::handle("bench-sink", "bench", None, Default::default());
            rt.block_on(async {
                let w = InstanceWorker::spawn(lib.clone(), "bench", "{}".into(), host)
                    .await
                    .unwrap();
                w.retire(Duration::from_secs(5)).await;
            });
            Arc::try_unwrap(lib).unwrap().unload()
        })
    });
    g.finish();
}

criterion_group!(benches, export, load);
criterion_main!(benches);
