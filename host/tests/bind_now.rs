//! The daemon loads plugins with `RTLD_NOW | RTLD_LOCAL`: a library that references a
//! symbol nothing provides is refused at load with the loader's reason, instead of
//! loading and crashing the agent the first time the missing function is called.
//! The library is built here with the C compiler (gcc is on every machine that
//! builds the agent: cc-based crates need it).

mod common;

use std::{fs, os::unix::fs::PermissionsExt, process::Command};

use common::*;
use tfo_agent::plugin::manager::PluginManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_with_an_unresolvable_symbol_is_refused_at_load() {
    let (dir, shadow) = dirs();
    let d = dir.path();
    let src = d.join("unresolved.c");
    // The exported entry point calls a function no library defines: lazy binding
    // would only notice when it is called.
    fs::write(
        &src,
        "void tfo_test_symbol_nobody_defines(void);\n\
         const char *tfo_plugin_abi_info(void) { tfo_test_symbol_nobody_defines(); return 0; }\n",
    )
    .unwrap();
    let so = d.join("libtfo_unresolved.so");
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .output()
        .expect("a C compiler (cc) is needed to build the test library");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    fs::remove_file(&src).unwrap();
    fs::set_permissions(&so, fs::Permissions::from_mode(0o644)).unwrap();

    let mgr = PluginManager::start(options(d, shadow.path()), vec![])
        .await
        .unwrap();
    let refusals = mgr.refusals();
    let r = refusals
        .iter()
        .find(|r| r.file.ends_with("libtfo_unresolved.so"))
        .unwrap_or_else(|| panic!("not refused: {refusals:?}"));
    assert!(
        r.reason
            .contains("undefined symbol: tfo_test_symbol_nobody_defines"),
        "{}",
        r.reason
    );
    assert!(mgr.libraries().await.is_empty());
    mgr.shutdown().await;
}
