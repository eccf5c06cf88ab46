//! Heap allocations a batch costs on its way through the pipeline (issue 9): source
//! `submit` -> batcher (merge) -> sink queue -> the runner's `pop`, counted per
//! thread by a global allocator wrapper that exists only in this crate's unit-test
//! binary. Run with `cargo test -p tfo-agent --lib alloc_tests -- --nocapture` to
//! see the figures; the bound makes a per-item allocation on this path fail.

use std::{sync::Arc, time::Duration};

use tfo_plugin_api::{Batch, KeyValue, Metric};

use super::{queue::SinkQueue, BatchSettings, Pipeline};
use crate::status::InstanceStatus;

#[global_allocator]
static GLOBAL: tfo_plugin_api::testing::CountingAllocator =
    tfo_plugin_api::testing::CountingAllocator;

use tfo_plugin_api::testing::allocations as allocs;

/// What a source emits: `n` gauges with two attributes.
fn source_batch(n: usize) -> Batch {
    let mut b = Batch::default();
    for i in 0..n {
        b.metrics.push(Metric::gauge(
            "system.cpu.utilization",
            "1",
            1,
            i as f64,
            vec![
                KeyValue::new("cpu", i as i64),
                KeyValue::new("state", "user"),
            ],
        ));
    }
    b
}

#[test]
fn allocations_from_submit_to_the_runner() {
    // Everything on this thread: the batcher task runs on the current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sources, per_source) = (10, 100);
    let items = (sources * per_source) as u64;
    let mut batches: Vec<Batch> = (0..sources).map(|_| source_batch(per_source)).collect();
    let (queue, pipeline) = rt.block_on(async {
        let p = Pipeline::with_batching(BatchSettings {
            max_items: items,
            flush_interval: Duration::from_secs(3600),
            resource: vec![
                KeyValue::new("host.name", "h"),
                KeyValue::new("service.name", "tfo-agent"),
            ],
        });
        let q = SinkQueue::new(1 << 20, 1 << 30, InstanceStatus::new("sink", "x"));
        p.add_sink("sink", tfo_plugin_api::DataTypes::ALL, q.clone());
        // Warm up tokio's and the queue's lazily allocated state.
        p.submit(source_batch(1), &None);
        p.flush().await;
        let _ = q.try_pop();
        (q, p)
    });
    let before = allocs();
    let popped = rt.block_on(async {
        for b in batches.drain(..) {
            assert_eq!(
                pipeline.submit(b, &None),
                tfo_plugin_api::EmitStatus::Accepted
            );
        }
        // The last submission reaches max_items: the batcher publishes on its own.
        tokio::task::yield_now().await;
        pipeline.flush().await;
        queue.pop().await
    });
    let n = allocs() - before;
    assert_eq!(popped.items, items);
    assert!(Arc::strong_count(&popped.batch) >= 1);
    println!(
        "pipeline: {sources} source batches x {per_source} items -> 1 exported batch: \
         {n} allocations ({:.1} per source batch, {:.3} per item)",
        n as f64 / sources as f64,
        n as f64 / items as f64
    );
    // Per source batch: its resource attributes (agent attributes added), the
    // merge's vector growth; per exported batch: the Arc, the queue entry, the
    // flush handshake. Nothing per item.
    assert!(
        n as f64 / items as f64 <= 0.2,
        "{n} allocations for {items} items"
    );
}
