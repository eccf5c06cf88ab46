//! The owner rule of the trust check (DESIGN.md §5): a plugin file owned by a user
//! other than the agent's or root is refused with the reason, and loads once its
//! ownership is fixed. Creating a file owned by someone else needs root: CI runs as
//! root; elsewhere the test says it skips (and fails with TFO_REQUIRE_SERVICES=1).

mod common;

use std::os::unix::fs::chown;

use common::*;
use tfo_agent::plugin::manager::PluginManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("TFO_REQUIRE_SERVICES").is_none(),
            "this test needs root to give a file another owner"
        );
        eprintln!("SKIP a_file_owned_by_another_user_is_refused: needs root to chown");
        return;
    }
    let (dir, shadow) = dirs();
    let d = dir.path();
    let f = install(d, &fixture("counting_sink"), "counting_sink");
    chown(&f, Some(65534), Some(65534)).unwrap();
    let mgr = PluginManager::start(options(d, shadow.path()), vec![])
        .await
        .unwrap();
    let refusals = mgr.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0]
            .reason
            .contains("refused: owned by uid 65534, not by the agent's user"),
        "{}",
        refusals[0].reason
    );
    assert!(mgr.libraries().await.is_empty());
    // Fixed ownership: the next scan loads it.
    chown(&f, Some(0), Some(0)).unwrap();
    mgr.rescan().await;
    assert!(mgr.refusals().is_empty(), "{:?}", mgr.refusals());
    assert_eq!(mgr.libraries().await.len(), 1);
    mgr.shutdown().await;
}
