//! The plugin manager against real plugin libraries: loading and refusing files, hot
//! upgrades under load, failed upgrades, panics, deletion, several instances.

mod common;

use std::{collections::BTreeMap, fs, os::unix::fs::PermissionsExt, time::Duration};

use common::*;
use serde_json::json;
use tfo_agent::{plugin::manager::PluginManager, status::State};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_plugin_loads_and_bad_files_are_refused_while_serving() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    // The bad ones.
    install(d, &fixture("incompatible_abi"), "incompatible_abi");
    let good = fs::read(fixture("counting_sink")).unwrap();
    fs::write(d.join("libtfo_truncated.so"), &good[..good.len() / 3]).unwrap();
    fs::write(d.join("libtfo_empty.so"), b"").unwrap();
    let libz = fs::canonicalize("/lib/x86_64-linux-gnu/libz.so.1")
        .or_else(|_| fs::canonicalize("/usr/lib/x86_64-linux-gnu/libz.so.1"))
        .expect("the system libz (zlib1g) is needed for the foreign-library case");
    fs::copy(&libz, d.join("libtfo_zlib.so")).unwrap();
    std::os::unix::fs::symlink(fixture("panicking_sink"), d.join("libtfo_linked.so")).unwrap();
    install(d, &fixture("slow_shutdown_sink"), "world_writable");
    fs::set_permissions(
        d.join("libtfo_world_writable.so"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    for f in ["libtfo_truncated.so", "libtfo_empty.so", "libtfo_zlib.so"] {
        fs::set_permissions(d.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }

    let out = dir.path().join("counted.txt");
    let mgr = PluginManager::start(
        options(d, shadow.path()),
        vec![spec("counter", "counting-sink", json!({"output": out}))],
    )
    .await
    .unwrap();

    let st = mgr.status("counter").unwrap();
    assert_eq!(st.state, State::Healthy, "{st:?}");
    assert_eq!(st.generation.version, "1.0.0-a");
    assert_eq!(st.generation.generation, 1);
    let libs = mgr.libraries().await;
    assert_eq!(libs.len(), 1, "only the good plugin loads: {libs:?}");
    assert_eq!(libs[0].descriptor.name, "counting-sink");
    assert_eq!(libs[0].descriptor.kind, "sink");
    assert_eq!(libs[0].descriptor.data_types, vec!["metrics"]);

    let reasons: BTreeMap<String, String> = mgr
        .refusals()
        .into_iter()
        .map(|r| {
            (
                r.file.file_name().unwrap().to_string_lossy().into_owned(),
                r.reason,
            )
        })
        .collect();
    let expect = [
        ("libtfo_incompatible_abi.so", "incompatible ABI: built against tfo-plugin-api 0.1.1 layout=abi-break-fixture, host speaks tfo-plugin-api 0.1.1 layout=standard"),
        ("libtfo_truncated.so", "truncated"),
        ("libtfo_empty.so", "empty"),
        ("libtfo_zlib.so", "not a tfo-agent plugin"),
        ("libtfo_linked.so", "symbolic link"),
        ("libtfo_world_writable.so", "writable by group or others"),
    ];
    for (file, needle) in expect {
        let r = reasons
            .get(file)
            .unwrap_or_else(|| panic!("{file} was not refused: {reasons:?}"));
        assert!(
            r.contains(needle),
            "{file}: {r:?} does not contain {needle:?}"
        );
    }

    // The good one keeps serving.
    mgr.pipeline().publish(numbered_batch(0, 5));
    wait_until(20, "5 items exported", || {
        mgr.status("counter").unwrap().items_exported == 5
    })
    .await;
    let got: Vec<u64> = recorded(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(mgr.shutdown().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_upgrade_under_load_loses_nothing() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let (mgr, out) = counting_manager(d, shadow.path(), true).await;
    assert_eq!(mgr.status("counter").unwrap().generation.generation, 1);

    // A producer pushes 10-item batches continuously until told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = mgr.pipeline().clone();
    let producer = tokio::spawn(async move {
        let mut next = 0u64;
        loop {
            pipeline.publish(numbered_batch(next, 10));
            next += 10;
            tokio::select! {
                _ = &mut stop_rx => return next,
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
    });

    let swaps = 50;
    for i in 0..swaps {
        let (src, version) = counting_build(i);
        install(d, &src, "counting_sink");
        let want = i + 2;
        wait_until(60, &format!("generation {want}"), || {
            let s = mgr.status("counter").unwrap();
            s.generation.generation == want && s.generation.version == version
        })
        .await;
    }
    let _ = stop_tx.send(());
    let sent = producer.await.unwrap();

    // Everything sent is either delivered by some generation or still queued; the
    // drain at shutdown must deliver the rest.
    let left = mgr.shutdown().await;
    assert_eq!(left, 0, "items left undelivered");
    let rec = recorded(&out);
    let mut counts = vec![0u32; sent as usize];
    for (_, v) in &rec {
        counts[*v as usize] += 1;
    }
    let missing: Vec<usize> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 0)
        .map(|(i, _)| i)
        .collect();
    let duplicates: u32 = counts.iter().filter(|c| **c > 1).map(|c| c - 1).sum();
    assert!(
        missing.is_empty(),
        "{} of {sent} items lost, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(
        duplicates, 0,
        "the design delivers each item once across swaps"
    );
    let versions: std::collections::BTreeSet<&str> = rec.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(versions.len(), 2, "both builds received data: {versions:?}");
    let st = mgr.status("counter").unwrap();
    assert_eq!(st.drops, 0);
    eprintln!(
        "hot upgrade: {swaps} swaps, {sent} items sent, all delivered, {duplicates} duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upgrade_keeps_the_old_generation_serving() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    let out = d.join("counted.txt");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mgr = PluginManager::start(
        opts,
        vec![spec("counter", "counting-sink", json!({"output": out}))],
    )
    .await
    .unwrap();

    install(d, &fixture("failing_init"), "counting_sink");
    mgr.rescan().await;
    let st = mgr.status("counter").unwrap();
    assert_eq!(st.state, State::Healthy, "{st:?}");
    assert_eq!(st.generation.generation, 1);
    assert_eq!(st.generation.version, "1.0.0-a");
    let err = st.last_error.unwrap_or_default();
    assert!(
        err.contains("upgrade refused") && err.contains("9.9.9-broken") && err.contains("always"),
        "{err}"
    );

    mgr.pipeline().publish(numbered_batch(100, 3));
    wait_until(20, "old generation exports", || {
        mgr.status("counter").unwrap().items_exported == 3
    })
    .await;
    assert!(recorded(&out).iter().all(|(v, _)| v == "1.0.0-a"));

    // A good build afterwards upgrades normally.
    install(d, &fixture("counting_sink_b"), "counting_sink");
    mgr.rescan().await;
    assert_eq!(mgr.status("counter").unwrap().generation.version, "1.0.0-b");
    assert_eq!(mgr.status("counter").unwrap().generation.generation, 2);
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_export_restarts_the_instance_and_retries_the_batch() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("panicking_sink"), "panicking_sink");
    let out = d.join("panicking.txt");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mgr = PluginManager::start(
        opts,
        vec![spec(
            "p",
            "panicking-sink",
            json!({"output": out, "panic_on_call": 2}),
        )],
    )
    .await
    .unwrap();
    for i in 0..3 {
        mgr.pipeline().publish(numbered_batch(i * 10, 10));
    }
    wait_until(30, "30 items exported", || {
        mgr.status("p").unwrap().items_exported == 30
    })
    .await;
    let st = mgr.status("p").unwrap();
    assert_eq!(st.panics, 1, "{st:?}");
    assert_eq!(st.restarts, 1);
    assert_eq!(st.state, State::Healthy);
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("fixture panic on export call 2"),
        "{st:?}"
    );
    let mut values: Vec<u64> = recorded(&out).into_iter().map(|(_, v)| v).collect();
    values.sort();
    assert_eq!(
        values,
        (0..30).collect::<Vec<_>>(),
        "every item once, the panicked batch retried"
    );
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_file_drains_then_stops_the_integration() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let file = install(d, &fixture("counting_sink"), "counting_sink");
    let out = d.join("counted.txt");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mgr = PluginManager::start(
        opts,
        vec![spec(
            "counter",
            "counting-sink",
            json!({"output": out, "delay_ms": 20}),
        )],
    )
    .await
    .unwrap();
    for i in 0..20 {
        mgr.pipeline().publish(numbered_batch(i * 10, 10));
    }
    fs::remove_file(&file).unwrap();
    mgr.rescan().await;
    // Drained before it stopped: all 200 items delivered.
    let mut values: Vec<u64> = recorded(&out).into_iter().map(|(_, v)| v).collect();
    values.sort();
    assert_eq!(values, (0..200).collect::<Vec<_>>());
    let st = mgr.status("counter").unwrap();
    assert_eq!(st.state, State::Unhealthy);
    assert!(st.reason.unwrap().contains("was removed"));
    assert!(mgr.libraries().await.is_empty());
    // Nothing routes to it any more.
    assert_eq!(mgr.pipeline().publish(numbered_batch(1000, 1)), 0);
    assert_eq!(mgr.graveyard().unloaded, 1, "{:?}", mgr.graveyard());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_of_one_plugin_each_with_its_own_config() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    let (o1, o2) = (d.join("one.txt"), d.join("two.txt"));
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mgr = PluginManager::start(
        opts,
        vec![
            spec("one", "counting-sink", json!({"output": o1})),
            spec("two", "counting_sink", json!({"output": o2})),
        ],
    )
    .await
    .unwrap();
    mgr.pipeline().publish(numbered_batch(7, 2));
    wait_until(20, "both exported", || {
        mgr.status("one").unwrap().items_exported == 2
            && mgr.status("two").unwrap().items_exported == 2
    })
    .await;
    assert_eq!(recorded(&o1), recorded(&o2));
    assert_eq!(recorded(&o1).len(), 2);
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_plugin_config_is_reported_with_its_path() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mgr = PluginManager::start(
        opts,
        vec![
            spec("bad", "counting-sink", json!({"output": "/x", "typo": 1})),
            spec("empty", "counting-sink", json!({"output": ""})),
        ],
    )
    .await
    .unwrap();
    let bad = mgr.status("bad").unwrap();
    assert_eq!(bad.state, State::Unhealthy);
    assert!(
        bad.reason
            .as_deref()
            .unwrap()
            .contains("unknown field `typo`"),
        "{bad:?}"
    );
    let empty = mgr.status("empty").unwrap();
    assert!(
        empty
            .reason
            .as_deref()
            .unwrap()
            .contains("output: must not be empty"),
        "{empty:?}"
    );
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_that_pins_its_library_is_kept_and_counted() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let file = install(d, &fixture("slow_shutdown_sink"), "slow_shutdown_sink");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mgr = PluginManager::start(
        opts,
        vec![spec(
            "pinned",
            "slow-shutdown-sink",
            json!({"leak_thread": true}),
        )],
    )
    .await
    .unwrap();
    assert_eq!(mgr.status("pinned").unwrap().state, State::Healthy);
    fs::remove_file(&file).unwrap();
    mgr.rescan().await;
    let g = mgr.graveyard();
    // The leaked thread carries the instance thread's name, so the host sees it and
    // never closes the library under it.
    assert_eq!(g.stuck_instances, 1, "{g:?}");
    assert_eq!(g.unloaded, 0, "{g:?}");
    let mapped = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        mapped.contains(&mgr.shadow_dir().to_string_lossy().into_owned()),
        "library kept mapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_will_not_shut_down_in_time_is_kept_loaded() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let file = install(d, &fixture("slow_shutdown_sink"), "slow_shutdown_sink");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    opts.timeouts.shutdown = Duration::from_millis(100);
    let mgr = PluginManager::start(
        opts,
        vec![spec(
            "slow",
            "slow-shutdown-sink",
            json!({"shutdown_ms": 3000}),
        )],
    )
    .await
    .unwrap();
    fs::remove_file(&file).unwrap();
    mgr.rescan().await;
    let g = mgr.graveyard();
    assert_eq!(g.stuck_instances, 1, "{g:?}");
    assert_eq!(g.unloaded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sha256_allow_list_is_enforced() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    install(d, &fixture("panicking_sink"), "panicking_sink");
    let allowed =
        tfo_agent::plugin::files::sha256_hex(&fs::read(fixture("counting_sink")).unwrap());
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    opts.allow_sha256 = Some([allowed].into_iter().collect());
    let mgr = PluginManager::start(opts, vec![]).await.unwrap();
    let libs: Vec<String> = mgr
        .libraries()
        .await
        .into_iter()
        .map(|l| l.descriptor.name)
        .collect();
    assert_eq!(libs, vec!["counting-sink"]);
    let refused = mgr.refusals();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].file.ends_with("libtfo_panicking_sink.so"));
    assert!(
        refused[0].reason.contains("is not in plugins.allow_sha256"),
        "{}",
        refused[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_loop_restarts_with_backoff_and_leaves_other_integrations_alone() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("panicking_sink"), "panicking_sink");
    install(d, &fixture("counting_sink"), "counting_sink");
    let (bad_out, good_out) = (d.join("bad.txt"), d.join("good.txt"));
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    opts.retry.initial = Duration::from_millis(40);
    opts.retry.max = Duration::from_secs(2);
    let mgr = PluginManager::start(
        opts,
        vec![
            spec(
                "looping",
                "panicking-sink",
                json!({"output": bad_out, "panic_until_call": 5}),
            ),
            spec("healthy", "counting-sink", json!({"output": good_out})),
        ],
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    mgr.pipeline().publish(numbered_batch(0, 10));
    // The other integration is not held up by the loop.
    wait_until(20, "the healthy sink exported", || {
        mgr.status("healthy").unwrap().items_exported == 10
    })
    .await;
    wait_until(30, "the looping sink finally exported", || {
        mgr.status("looping").unwrap().items_exported == 10
    })
    .await;
    let st = mgr.status("looping").unwrap();
    assert_eq!((st.panics, st.restarts), (5, 5), "{st:?}");
    // Five restarts with backoff 40, 80, 160, 320, 640 ms (±20 %): at least ~1 s, not a
    // spin of five immediate retries.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "restarted without backoff: {:?}",
        started.elapsed()
    );
    assert_eq!(
        recorded(&bad_out).len(),
        10,
        "delivered once after the loop"
    );
    assert_eq!(mgr.status("healthy").unwrap().restarts, 0);
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_never_answers_is_abandoned_and_the_instance_replaced() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("slow_shutdown_sink"), "slow_shutdown_sink");
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    opts.timeouts.call = Duration::from_millis(300);
    opts.timeouts.shutdown = Duration::from_secs(3);
    let mgr = PluginManager::start(
        opts,
        vec![spec(
            "hung",
            "slow-shutdown-sink",
            json!({"export_hang_ms": 1500}),
        )],
    )
    .await
    .unwrap();
    mgr.pipeline().publish(numbered_batch(0, 5));
    // The first export hangs past the call deadline: the batch goes back to the queue,
    // a new instance takes over and delivers it.
    wait_until(20, "delivered by the replacement", || {
        mgr.status("hung").unwrap().items_exported == 5
    })
    .await;
    let st = mgr.status("hung").unwrap();
    assert_eq!(st.restarts, 1, "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("no answer within"),
        "{st:?}"
    );
    // The abandoned call returns after 1.5 s; its thread then shuts down and is joined
    // within the shutdown deadline, so nothing stays stuck.
    wait_until(20, "the abandoned thread retired", || {
        mgr.graveyard().retired_instances == 1
    })
    .await;
    assert_eq!(mgr.graveyard().stuck_instances, 0);
    assert_eq!(mgr.status("hung").unwrap().state, State::Healthy);
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_rapid_file_events_cause_few_scans_and_no_reload() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let file = install(d, &fixture("counting_sink"), "counting_sink");
    let out = d.join("counted.txt");
    let mut opts = options(d, shadow.path());
    opts.watch = true;
    opts.debounce = Duration::from_millis(200);
    let mgr = PluginManager::start(
        opts,
        vec![spec("counter", "counting-sink", json!({"output": out}))],
    )
    .await
    .unwrap();
    let scans = mgr.scans();
    let before = *scans.borrow();
    let bytes = fs::read(&file).unwrap();
    for i in 0..1000 {
        match i % 4 {
            // Rewrite the plugin with the same content (same sha256): a hint, not a change.
            0 => {
                let tmp = d.join("libtfo_counting_sink.so.tmp");
                fs::write(&tmp, &bytes).unwrap();
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
                fs::rename(&tmp, &file).unwrap();
            }
            // Files that are not plugins.
            1 => fs::write(d.join(format!("junk-{i}.txt")), b"x").unwrap(),
            2 => fs::write(d.join(format!(".libtfo_hidden{i}.so")), b"x").unwrap(),
            _ => {
                let _ = fs::remove_file(d.join(format!("junk-{}.txt", i - 2)));
            }
        }
    }
    // Wait for the debounced scan that follows the burst.
    let mut rx = scans.clone();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|n| *n > before))
        .await
        .expect("a scan after the burst")
        .unwrap();
    // Nothing signals "no more scans will come": give trailing events three debounce
    // periods, then count.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = *scans.borrow();
    let st = mgr.status("counter").unwrap();
    assert_eq!(
        st.generation.generation, 1,
        "same content: no reload ({st:?})"
    );
    assert!(
        after - before <= 5,
        "{} scans for 1,000 events",
        after - before
    );
    mgr.pipeline().publish(numbered_batch(0, 3));
    wait_until(20, "still exporting", || {
        mgr.status("counter").unwrap().items_exported == 3
    })
    .await;
    eprintln!("1,000 file events -> {} scan(s), 0 reloads", after - before);
    mgr.shutdown().await;
}

/// Collected batches are held as the plugin allocated them (no copy): a retired
/// source's library stays loaded while its batches wait at a sink that is down, and
/// is closed once they are delivered. Fails if the host dropped the library first
/// (crash, or `unloaded` before delivery) or never closed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_library_stays_loaded_until_its_queued_batches_are_delivered() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    let ticker = install(d, &fixture("ticker_source"), "ticker_source");
    let out = d.join("counted.txt");
    let down = d.join("down.flag");
    fs::write(&down, "").unwrap();
    let mut opts = options(d, shadow.path());
    opts.watch = false;
    let mut source = spec("ticker", "ticker-source", json!({"per_collect": 5}));
    source.interval = Duration::from_millis(20);
    let mgr = PluginManager::start(
        opts,
        vec![
            source,
            spec(
                "counter",
                "counting-sink",
                json!({"output": out, "down_while_exists": down}),
            ),
        ],
    )
    .await
    .unwrap();
    wait_until(20, "batches queued at the down sink", || {
        mgr.status("counter").is_some_and(|s| s.queued_items >= 20)
    })
    .await;
    // The source is removed: its instance retires, its batches stay queued.
    fs::remove_file(&ticker).unwrap();
    mgr.rescan().await;
    wait_until(20, "the source retired", || {
        mgr.graveyard().retired_instances >= 1
    })
    .await;
    let g = mgr.graveyard();
    assert_eq!(g.unloaded, 0, "closed while its batches are queued: {g:?}");
    assert_eq!(g.pending, 1, "{g:?}");
    let queued = mgr.status("counter").unwrap().queued_items;
    assert!(queued >= 20, "{queued}");
    // The sink comes back: everything is delivered, then the library is closed.
    fs::remove_file(&down).unwrap();
    wait_until(30, "the retired library closed", || {
        let g = mgr.graveyard();
        g.unloaded == 1 && g.pending == 0
    })
    .await;
    let values: Vec<u64> = recorded(&out).into_iter().map(|(_, v)| v).collect();
    assert!(values.len() as u64 >= queued, "{} < {queued}", values.len());
    let mut sorted = values.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), values.len(), "delivered twice");
    assert_eq!(mgr.graveyard().still_mapped, 0);
    mgr.shutdown().await;
}
