//! What the plugin boundary costs.
//!
//! - `export_1000/direct`: the bench-sink's checksum called as a Rust function;
//! - `export_1000/abi`: the same code through the plugin's `export` (sabi_trait
//!   call, panic guard, host log bridge), on this thread;
//! - `export_1000/host_path`: the full host path, a hop to the instance thread and
//!   back, calls back to back from `block_on` on this thread;
//! - `export_1000/runner_export_health`: what the sink runner does per batch, from a
//!   tokio task: `export`, then `health` (two hops);
//! - `long_call/...`: a call as long as a real exporter's 1,000-item export (the
//!   bench sink's export repeated `LONG_REPEAT` times in one call, ~1.4 ms), on this
//!   thread (`abi`) and through the host path (`host_path`), where the fixed cost of
//!   the hop is what the ≤ 2 % budget is about. Before the criterion groups it
//!   prints the medians of interleaved rounds of the two (`TFO_BENCH_ROUNDS`,
//!   default 500) and their difference, the fairer comparison on a busy machine;
//! - `load/...`: shadow copy + dlopen + version and layout checks, and + create +
//!   retire of one instance.
//!
//! Run with `scripts/bench.sh` (release build of the fixture first).

use std::{path::PathBuf, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tfo_agent::pipeline::HeldBatch;
use tfo_agent::plugin::instance::PluginHealth;
use tfo_agent::plugin::{
    files, host_services::InstanceServices, instance::InstanceWorker, library,
};
use tfo_plugin_api::{Batch, KeyValue, Metric};

/// How many bench-sink exports one `long_call` makes: ~1.4 ms on the bench VM, the
/// time of the prometheus sink's export of 1,000 items.
const LONG_REPEAT: usize = 250;

/// Voluntary context switches of the instance threads (named "tfo<n>-..."), of
/// every other thread, and CPU time (ns), summed over this process's threads
/// (`/proc/self/task/*/{comm,status,schedstat}`).
fn process_sleeps_and_cpu_ns() -> (u64, u64, u64) {
    let (mut instance, mut other, mut cpu) = (0, 0, 0);
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let sleeps = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if comm.starts_with("tfo") {
            instance += sleeps;
        } else {
            other += sleeps;
        }
        let sched = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        cpu += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    (instance, other, cpu)
}

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
    let batch = Arc::new(HeldBatch::own(batch_1000()));

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
    let worker = Arc::new(worker);
    g.bench_function("runner_export_health", |b| {
        b.iter_custom(|iters| {
            let (w, batch) = (worker.clone(), batch.clone());
            rt.block_on(async move {
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    for _ in 0..iters {
                        w.export(batch.clone(), Duration::from_secs(5))
                            .await
                            .unwrap();
                        let h: PluginHealth = w.health(Duration::from_secs(5)).await.unwrap();
                        std::hint::black_box(h);
                    }
                    started.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    g.finish();

    // A call as long as a real exporter's: the same export repeated in one call.
    let long_abi = |inst: &mut tfo_plugin_api::PluginInstanceBox, batch: &Batch| {
        for _ in 0..LONG_REPEAT {
            std::hint::black_box(inst.export(batch));
        }
    };
    let long_host = |worker: &InstanceWorker, batch: &Arc<HeldBatch>| {
        let batch = batch.clone();
        rt.block_on(worker.call(Duration::from_secs(5), move |i| {
            for _ in 0..LONG_REPEAT {
                std::hint::black_box(i.export(&batch));
            }
        }))
        .unwrap()
    };
    let rounds: usize = std::env::var("TFO_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let (mut t_abi, mut t_host) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let s = std::time::Instant::now();
        long_abi(&mut instance, &batch);
        t_abi.push(s.elapsed());
        let s = std::time::Instant::now();
        long_host(&worker, &batch);
        t_host.push(s.elapsed());
    }
    // Per round, host_path minus abi: the hop's cost with the drift of the machine
    // between rounds taken out.
    let mut diff: Vec<f64> = t_host
        .iter()
        .zip(&t_abi)
        .map(|(h, a)| (h.as_secs_f64() - a.as_secs_f64()) * 1e6)
        .collect();
    diff.sort_by(f64::total_cmp);
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let (a, h) = (med(&mut t_abi), med(&mut t_host));
    println!(
        "long_call interleaved, {rounds} rounds, medians: abi {a:.1} us, host_path {h:.1} us; \
         per-round difference p25 {:+.1} us, median {:+.1} us ({:+.2}% of abi), p75 {:+.1} us",
        q(&diff, 0.25),
        q(&diff, 0.5),
        q(&diff, 0.5) / a * 100.0,
        q(&diff, 0.75),
    );
    // Sleeps (voluntary context switches, i.e. a thread parked and had to be woken)
    // and CPU per call, summed over every thread of this process: counts, not wall
    // times, so they do not move with the load of the machine.
    let per_call = |what: &str, calls: u64, run: &mut dyn FnMut()| {
        let (i0, o0, c0) = process_sleeps_and_cpu_ns();
        let started = std::time::Instant::now();
        run();
        let wall = started.elapsed().as_secs_f64() * 1e9;
        let (i1, o1, c1) = process_sleeps_and_cpu_ns();
        let per = |a: u64, b: u64| (b - a) as f64 / calls as f64;
        println!(
            "{what}: per call {:.2} sleeps of the instance thread, {:.2} of the caller's \
             side, {:.1} us CPU, {:.1} us wall",
            per(i0, i1),
            per(o0, o1),
            per(c0, c1) / 1e3,
            wall / calls as f64 / 1e3
        );
    };
    let n = 2000;
    per_call("short export, back to back", n, &mut || {
        for _ in 0..n {
            rt.block_on(worker.export(batch.clone(), Duration::from_secs(5)))
                .unwrap();
        }
    });
    per_call("short export + health from a task (runner)", n, &mut || {
        let (w, batch) = (worker.clone(), batch.clone());
        rt.block_on(async move {
            tokio::spawn(async move {
                for _ in 0..n {
                    w.export(batch.clone(), Duration::from_secs(5))
                        .await
                        .unwrap();
                    std::hint::black_box(w.health(Duration::from_secs(5)).await.unwrap());
                }
            })
            .await
            .unwrap()
        })
    });
    let n = 300;
    per_call("long call, back to back", n, &mut || {
        for _ in 0..n {
            long_host(&worker, &batch);
        }
    });
    per_call(
        "long call + abi long call on this thread, interleaved (abi included)",
        n,
        &mut || {
            for _ in 0..n {
                long_abi(&mut instance, &batch);
                long_host(&worker, &batch);
            }
        },
    );

    let mut g = c.benchmark_group("long_call");
    g.bench_function("abi", |b| b.iter(|| long_abi(&mut instance, &batch)));
    g.bench_function("host_path", |b| b.iter(|| long_host(&worker, &batch)));
    g.finish();

    let worker = Arc::try_unwrap(worker).ok().expect("no other owner");
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
