//! End-to-end test through the exported root module, the way the agent drives the
//! plugin: descriptor, `create` with a JSON config, `export`, `flush`, `shutdown`.
//! The library's root-module symbol is linked into this test binary directly
//! instead of being loaded with `dlopen`.

use std::{
    fs,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use tfo_plugin_api::{
    __private::abi_stable::{
        library::LibHeader,
        sabi_trait::TD_Opaque,
        std_types::{RArc, RResult, RStr},
    },
    Batch, DataTypes, EmitStatus, ErrorKind, HealthState, HostHandle, HostServices, KeyValue,
    LogLevel, Metric, PluginKind, PluginModRef,
};

// Links the library under test, whose only use here is the symbol below.
extern crate tfo_file_exporter;

extern "C" {
    // Defined by `export_plugin!` in the library under test.
    #[link_name = "_1as_0lib_1header_0root_bmodule_bloader"]
    #[allow(improper_ctypes)]
    static ROOT_MODULE_HEADER: LibHeader;
}

fn module() -> PluginModRef {
    // SAFETY: the symbol is the `LibHeader` static the macro defines in this crate.
    unsafe { &ROOT_MODULE_HEADER }
        .init_root_module::<PluginModRef>()
        .expect("root module")
}

#[derive(Clone, Default)]
struct TestHost {
    logs: Arc<Mutex<Vec<String>>>,
}

impl HostServices for TestHost {
    fn log(&self, _level: LogLevel, _target: RStr<'_>, message: RStr<'_>) {
        self.logs.lock().unwrap().push(message.as_str().to_string());
    }
    fn emit(&self, _batch: Batch) -> EmitStatus {
        EmitStatus::Closed
    }
    fn report_panic(&self, message: RStr<'_>) {
        panic!("unexpected plugin panic: {}", message.as_str());
    }
}

/// Calls the plugin's `create`. The SDK's panic hook, installed on the first
/// `create`, is process-wide here (the library is linked in, not a separate cdylib
/// with its own std) and would hide this test's own assertion messages, so the
/// default hook is put back afterwards.
fn create(
    h: &TestHost,
    config: &str,
) -> RResult<tfo_plugin_api::PluginInstanceBox, tfo_plugin_api::CreateError> {
    let created = (module().create())(host(h), RStr::from_str("files"), RStr::from_str(config));
    drop(std::panic::take_hook());
    created
}

fn host(h: &TestHost) -> HostHandle {
    HostHandle::from_ptr(RArc::new(h.clone()), TD_Opaque)
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tfo-file-exporter-it-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn batch(n: usize) -> Batch {
    Batch {
        metrics: (0..n)
            .map(|i| {
                Metric::gauge(
                    "g",
                    "1",
                    i as u64,
                    i as f64,
                    vec![KeyValue::new("i", i as i64)],
                )
            })
            .collect::<Vec<_>>()
            .into(),
        ..Batch::default()
    }
}

#[test]
fn descriptor_describes_a_sink_for_all_data() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "file-exporter");
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(d.kind, PluginKind::Sink);
    assert_eq!(d.data_types, DataTypes::ALL);
    assert_eq!(
        d.plugin_api_version.as_str(),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
}

#[test]
fn exports_rotates_flushes_and_shuts_down() {
    let s = Scratch::new("e2e");
    let path = s.0.join("out.ndjson");
    // Three batches of four points; all lines have the same length, and the limit
    // holds exactly five of them, so the twelve lines end up as 5 + 5 + 2.
    let expected: Vec<String> = (0..3)
        .flat_map(|_| tfo_file_exporter::encode::encode_batch(&batch(4)))
        .collect();
    let line_len = expected[0].len() + 1;
    assert!(expected.iter().all(|l| l.len() + 1 == line_len));
    let max_bytes = 5 * line_len;
    let config =
        serde_json::json!({ "path": path, "max_bytes": max_bytes, "max_files": 2 }).to_string();

    let h = TestHost::default();
    let mut inst = match create(&h, &config) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create failed: {e:?}"),
    };
    assert!(inst.start().is_ok());
    for _ in 0..3 {
        match inst.export(&batch(4)) {
            RResult::ROk(ok) => assert_eq!(ok.accepted, 4),
            RResult::RErr(e) => panic!("export failed: {e}"),
        }
    }
    assert!(inst.flush().is_ok());
    assert_eq!(inst.health().state, HealthState::Healthy);
    // A sink does not collect.
    match inst.collect() {
        RResult::RErr(e) => assert_eq!(e.kind, ErrorKind::Unsupported),
        RResult::ROk(_) => panic!("collect should be unsupported"),
    }
    assert!(inst.shutdown(1000).is_ok());
    drop(inst);

    let read = |name: &str| fs::read_to_string(s.0.join(name)).unwrap();
    let (oldest, older, current) = (
        read("out.ndjson.2"),
        read("out.ndjson.1"),
        read("out.ndjson"),
    );
    assert!(!s.0.join("out.ndjson.3").exists());
    assert_eq!(
        [
            oldest.lines().count(),
            older.lines().count(),
            current.lines().count()
        ],
        [5, 5, 2]
    );
    let all: Vec<&str> = [&oldest, &older, &current]
        .iter()
        .flat_map(|t| t.lines())
        .collect();
    assert_eq!(all, expected);
    for text in [&oldest, &older, &current] {
        assert!(text.len() <= max_bytes && text.ends_with('\n'));
    }
    assert!(h
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("file exporter ready")));
}

#[test]
fn invalid_config_reports_every_field() {
    let config = r#"{"path": "", "max_bytes": 0, "max_files": 0}"#;
    match create(&TestHost::default(), config) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
            assert_eq!(paths, ["path", "max_bytes", "max_files"]);
            assert_eq!(e.message.as_str(), "invalid configuration");
        }
    }
}

#[test]
fn unknown_key_is_a_config_error_with_its_path() {
    let config = r#"{"path": "/tmp/x.ndjson", "max_bytes": 10, "rotate": true}"#;
    match create(&TestHost::default(), config) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            assert_eq!(e.config_errors.len(), 1, "{e:?}");
            assert_eq!(e.config_errors[0].path.as_str(), "rotate");
            assert!(
                e.config_errors[0]
                    .message
                    .contains("unknown field `rotate`"),
                "{e:?}"
            );
        }
    }
}

#[test]
fn missing_directory_is_a_path_error() {
    let s = Scratch::new("missing");
    let config = serde_json::json!({ "path": s.0.join("nope/out.ndjson") }).to_string();
    match create(&TestHost::default(), &config) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            assert_eq!(e.config_errors.len(), 1, "{e:?}");
            assert_eq!(e.config_errors[0].path.as_str(), "path");
        }
    }
}

#[test]
fn a_write_error_is_retryable_and_unhealthy() {
    // Linux's /dev/full accepts the open and fails every write with ENOSPC.
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let mut inst = match create(&TestHost::default(), r#"{"path": "/dev/full"}"#) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create failed: {e:?}"),
    };
    match inst.export(&batch(2)) {
        RResult::ROk(_) => panic!("export to /dev/full should fail"),
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
            assert_eq!(e.accepted, 0);
            assert!(e.message.contains("/dev/full"), "{e}");
        }
    }
    let health = inst.health();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(health.reason.contains("/dev/full"), "{health:?}");
    // An empty batch writes nothing, succeeds and clears the error.
    match inst.export(&Batch::default()) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 0),
        RResult::RErr(e) => panic!("empty export failed: {e}"),
    }
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(1000).is_ok());
}
