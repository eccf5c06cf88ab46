//! The shadow cache across restarts (`plugins.shadow_cache`): an unchanged plugin
//! file is loaded from the cache's copy without being read again; a rewritten one is
//! read, hashed and copied again; a replaced one is hot-swapped as without a cache,
//! and copies nothing uses any more are deleted.

mod common;

use std::{fs, path::Path, time::SystemTime};

use common::*;
use serde_json::json;
use tfo_agent::plugin::{
    manager::{LibraryView, PluginManager},
    shadow_cache::RACY_MARGIN,
};

/// The cache records a file only when it last changed more than `RACY_MARGIN` before
/// it was read (file timestamps move in clock ticks): wait until `file` is that old.
fn wait_until_settled(file: &Path) {
    let changed = fs::metadata(file).unwrap().modified().unwrap();
    let ready = changed + RACY_MARGIN + std::time::Duration::from_millis(100);
    if let Ok(left) = ready.duration_since(SystemTime::now()) {
        std::thread::sleep(left);
    }
}

async fn start(d: &Path, shadow: &Path, cache: &Path, out: &Path) -> PluginManager {
    let mut opts = options(d, shadow);
    opts.watch = false;
    opts.shadow_cache = Some(cache.to_path_buf());
    PluginManager::start(
        opts,
        vec![spec("counter", "counting-sink", json!({"output": out}))],
    )
    .await
    .unwrap()
}

async fn only_library(mgr: &PluginManager) -> LibraryView {
    let libs = mgr.libraries().await;
    assert_eq!(libs.len(), 1, "{libs:?}");
    libs.into_iter().next().unwrap()
}

fn copies(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".so"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_plugin_is_not_read_again_after_a_restart() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let cache = shadow.path().join("cache");
    let out = d.join("counted.txt");
    let file = install(d, &fixture("counting_sink"), "counting_sink");
    wait_until_settled(&file);

    // First start: read, hashed, copied into the cache, loaded from that copy.
    let mgr = start(d, shadow.path(), &cache, &out).await;
    let first = only_library(&mgr).await;
    assert!(!first.cached, "{first:?}");
    assert_eq!(first.shadow, cache.join(format!("{}.so", first.sha256)));
    assert_eq!(fs::read(&first.shadow).unwrap(), fs::read(&file).unwrap());
    mgr.pipeline().publish(numbered_batch(0, 3));
    wait_until(20, "first run exports", || {
        mgr.status("counter").unwrap().items_exported == 3
    })
    .await;
    mgr.shutdown().await;
    drop(mgr);
    assert!(cache.join("index.json").is_file());

    // Restart: the file is not read; the same copy is mapped and serves.
    let mgr = start(d, shadow.path(), &cache, &out).await;
    let again = only_library(&mgr).await;
    assert!(again.cached, "{again:?}");
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(again.shadow, first.shadow);
    mgr.pipeline().publish(numbered_batch(3, 3));
    wait_until(20, "second run exports", || {
        mgr.status("counter").unwrap().items_exported == 3
    })
    .await;
    mgr.shutdown().await;
    drop(mgr);

    // The same bytes written again: ctime moved, so the file is read and hashed again.
    fs::write(&file, fs::read(fixture("counting_sink")).unwrap()).unwrap();
    let mgr = start(d, shadow.path(), &cache, &out).await;
    let rewritten = only_library(&mgr).await;
    assert!(!rewritten.cached, "{rewritten:?}");
    assert_eq!(rewritten.sha256, first.sha256);
    mgr.shutdown().await;
    drop(mgr);
    let values: Vec<u64> = recorded(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, (0..6).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_plugin_is_swapped_and_its_old_copy_deleted() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let cache = shadow.path().join("cache");
    let out = d.join("counted.txt");
    let file = install(d, &fixture("counting_sink"), "counting_sink");
    let mgr = start(d, shadow.path(), &cache, &out).await;
    let a = only_library(&mgr).await;
    assert_eq!(copies(&cache), vec![format!("{}.so", a.sha256)]);

    install(d, &fixture("counting_sink_b"), "counting_sink");
    mgr.rescan().await;
    let b = only_library(&mgr).await;
    assert_ne!(a.sha256, b.sha256);
    assert_eq!(mgr.status("counter").unwrap().generation.version, "1.0.0-b");
    assert_eq!(b.shadow, cache.join(format!("{}.so", b.sha256)));
    // build A was retired and unmapped; the next scan deletes its copy
    mgr.rescan().await;
    assert_eq!(copies(&cache), vec![format!("{}.so", b.sha256)]);

    // The file goes: its instance drains, and its copy is deleted once unmapped.
    fs::remove_file(&file).unwrap();
    mgr.rescan().await;
    assert!(mgr.libraries().await.is_empty());
    mgr.rescan().await;
    assert!(copies(&cache).is_empty(), "{:?}", copies(&cache));
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_cache_loads_private_copies() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let cache = shadow.path().join("cache");
    install(d, &fixture("counting_sink"), "counting_sink");
    let one = start(d, shadow.path(), &cache, &d.join("one.txt")).await;
    let two = start(d, shadow.path(), &cache, &d.join("two.txt")).await;
    let (a, b) = (only_library(&one).await, only_library(&two).await);
    assert!(a.shadow.starts_with(&cache), "{a:?}");
    assert!(!b.shadow.starts_with(&cache), "{b:?}");
    assert!(b.shadow.is_file());
    one.shutdown().await;
    two.shutdown().await;
}
