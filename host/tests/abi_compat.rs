//! ABI compatibility across plugin-api versions (docs/abi.md), with real plugins:
//!
//! - `abi-prev-minor` is built against a frozen copy of plugin-api at ABI 1.0
//!   (fixtures/abi-prev-minor/plugin-api: no `PluginInstance::preview`, no
//!   `HostServices::reclaimed`); this host speaks ABI 1.2. It must load (the
//!   host's `HostServices` vtable, one entry longer than the plugin knows, passes
//!   the layout check), create, exchange data both ways intact, fall back to the
//!   default of the method it does not have, and unload.
//! - `abi-next-major` is built against a copy at ABI 2.0 (`preview` moved into the
//!   vtable prefix). It must be refused, with both versions named, before any of its
//!   code other than the two identity symbols runs.
//! - abi_stable's own checker, in its native orientation (host = interface), refuses
//!   the ABI 1.0 plugin: the evidence for why the loader swaps the roles.

mod common;

use std::{
    fs,
    process::Command,
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::Duration,
};

use abi_stable::{
    abi_stability::abi_checking::{check_layout_compatibility_with_globals, CheckingGlobals},
    library::{abi_header_from_raw_library, IsLayoutChecked, RawLibrary},
    std_types::{ROption, RVec},
    StableAbi,
};
use common::*;
use tfo_agent::plugin::{
    files,
    host_services::{EmitTarget, InstanceServices},
    instance::{CallErrorKind, InstanceWorker, Retired},
    library,
    manager::PluginManager,
};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, EmitStatus, HealthState, HistogramValue, KeyValue, LogRecord,
    Metric, MetricKind, PluginModRef, PointValue, Quantile, Resource, Span, SpanEvent, SpanKind,
    StatusCode, SummaryValue, Temporality, ABI_VERSION,
};

const T: Duration = Duration::from_secs(20);

/// A batch that touches every data type and every variant the plugin has to read
/// through its own (ABI 1.0) definition of the types.
fn rich_batch() -> Batch {
    let attrs = |n: i64| -> RVec<KeyValue> {
        vec![
            KeyValue::new("s", "text ü"),
            KeyValue::new("b", AnyValue::Bool(true)),
            KeyValue::new("i", AnyValue::Int(-n)),
            KeyValue::new("d", AnyValue::Double(n as f64 + 0.25)),
            KeyValue::new("bytes", AnyValue::Bytes(vec![0u8, 255, n as u8].into())),
        ]
        .into()
    };
    let metric = |name: &str, kind, temporality, value| Metric {
        name: name.into(),
        description: format!("{name} description").as_str().into(),
        unit: "By".into(),
        kind,
        temporality,
        is_monotonic: kind == MetricKind::Sum,
        points: vec![DataPoint {
            attributes: attrs(7),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            time_unix_nano: 1_700_000_010_000_000_123,
            value,
        }]
        .into(),
    };
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "abi-compat"),
                KeyValue::new("host.name", "h1"),
            ]
            .into(),
        },
        metrics: vec![
            metric(
                "g",
                MetricKind::Gauge,
                Temporality::Unspecified,
                PointValue::Double(42.5),
            ),
            metric(
                "c",
                MetricKind::Sum,
                Temporality::Cumulative,
                PointValue::Int(i64::MAX),
            ),
            metric(
                "h",
                MetricKind::Histogram,
                Temporality::Delta,
                PointValue::Histogram(HistogramValue {
                    count: 6,
                    sum: ROption::RSome(12.5),
                    bounds: vec![1.0, 5.0].into(),
                    bucket_counts: vec![1, 2, 3].into(),
                    min: ROption::RSome(0.5),
                    max: ROption::RNone,
                }),
            ),
            metric(
                "s",
                MetricKind::Summary,
                Temporality::Unspecified,
                PointValue::Summary(SummaryValue {
                    count: 3,
                    sum: 9.0,
                    quantiles: vec![Quantile {
                        quantile: 0.99,
                        value: 4.5,
                    }]
                    .into(),
                }),
            ),
        ]
        .into(),
        spans: vec![Span {
            trace_id: [7; 16],
            span_id: [8; 8],
            parent_span_id: [9; 8],
            name: "GET /x".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            attributes: attrs(3),
            events: vec![SpanEvent {
                name: "retry".into(),
                time_unix_nano: 15,
                attributes: attrs(4),
            }]
            .into(),
        }]
        .into(),
        logs: vec![LogRecord {
            time_unix_nano: 30,
            observed_time_unix_nano: 31,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: AnyValue::Str("disk full".into()),
            attributes: attrs(5),
            trace_id: [7; 16],
            span_id: [8; 8],
        }]
        .into(),
    }
}

fn agent(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The previous minor's plugin through the loader and an instance thread, call by
/// call: every batch it is given comes back equal (export, then `emit` and
/// `collect`), the appended method it lacks answers through its default, and the
/// library leaves the address space afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_minor_plugin_loads_exchanges_data_and_unloads() {
    let (dir, shadow) = dirs();
    let path = install(dir.path(), &fixture("abi_prev_minor"), "abi_prev_minor");
    let file = files::trust(&path, None).unwrap();
    let lib = library::load(&file, shadow.path()).expect("the ABI 1.0 plugin must load");
    assert_eq!(
        lib.abi_version.map(|v| v.to_string()).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        ABI_VERSION.to_string(),
        "1.2",
        "this test assumes host ABI 1.2"
    );
    assert_eq!(lib.descriptor.name, "abi-prev-minor");
    assert_eq!(lib.descriptor.plugin_api_version, "0.1.0");
    let shadow_path = lib.shadow_path.clone();
    let lib = Arc::new(lib);

    let emitted: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let sink = emitted.clone();
    // A copy: the test keeps what it received past the library's unload below.
    let emit: EmitTarget = Arc::new(move |b: Batch| {
        sink.lock().unwrap().push(b.clone());
        EmitStatus::Accepted
    });
    let panics = Arc::new(AtomicU64::new(0));
    let host = InstanceServices::handle("abi-prev-minor", "prev", Some(emit), panics.clone());
    let worker = InstanceWorker::spawn(
        lib.clone(),
        "prev",
        serde_json::json!({"echo_emit": true}).to_string(),
        host,
    )
    .await
    .expect("create");
    worker.start(T).await.unwrap();

    let sent = rich_batch();
    let accepted = worker
        .export(Arc::new(sent.clone().into()), T)
        .await
        .unwrap();
    assert_eq!(accepted, sent.item_count());
    assert_eq!(accepted, 6, "4 metric points, 1 span, 1 log");
    // Plugin -> host through HostServices::emit: what it read is what was sent.
    assert_eq!(*emitted.lock().unwrap(), vec![sent.clone()]);
    // Plugin -> host through collect's return value.
    // It is the plugin's own memory, which holds the library loaded until dropped.
    let back = worker.collect(T).await.unwrap();
    assert_eq!(*back, sent);
    assert_eq!(back.libraries_kept(), 1);
    drop(back);
    assert!(worker.collect(T).await.unwrap().is_empty());

    // `preview` was appended in ABI 1.1: the plugin's vtable has no entry, so the
    // host's call runs the trait's default instead of jumping past the vtable.
    let e = worker
        .preview(Arc::new(sent.clone().into()), T)
        .await
        .expect_err("an ABI 1.0 plugin has no preview");
    assert_eq!(e.kind, CallErrorKind::Unsupported, "{e:?}");
    assert!(e.message.contains("cannot preview"), "{e:?}");

    let health = worker.health(T).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{health:?}");
    worker.flush(T).await.unwrap();
    let (retired, err) = worker.retire(Duration::from_secs(2)).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(retired, Retired::Joined), "{retired:?}");
    assert_eq!(panics.load(std::sync::atomic::Ordering::Relaxed), 0);

    let lib = Arc::try_unwrap(lib).expect("no other reference to the library");
    let out = lib.unload();
    assert!(!out.still_mapped, "{} still mapped", shadow_path.display());
    assert!(!library::is_mapped(&shadow_path));
}

/// The same plugin served by the manager, as an operator would run it: found in the
/// plugin directory, listed with its ABI identity, fed by the pipeline, shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_minor_plugin_serves_through_the_manager() {
    let (dir, shadow) = dirs();
    install(dir.path(), &fixture("abi_prev_minor"), "abi_prev_minor");
    let out = dir.path().join("received.txt");
    let mgr = PluginManager::start(
        options(dir.path(), shadow.path()),
        vec![spec(
            "prev",
            "abi-prev-minor",
            serde_json::json!({ "output": out }),
        )],
    )
    .await
    .unwrap();
    assert!(mgr.refusals().is_empty(), "{:?}", mgr.refusals());
    let libs = mgr.libraries().await;
    assert_eq!(libs.len(), 1, "{libs:?}");
    assert_eq!(libs[0].descriptor.name, "abi-prev-minor");
    assert_eq!(libs[0].abi, "tfo-plugin-api 0.1.0 layout=standard");

    mgr.pipeline().publish(numbered_batch(0, 5));
    wait_until(20, "5 items exported", || {
        mgr.status("prev").unwrap().items_exported == 5
    })
    .await;
    assert_eq!(
        recorded(&out),
        (0..5)
            .map(|v| ("prev-minor".to_string(), v))
            .collect::<Vec<_>>()
    );
    mgr.shutdown().await;
}

/// A plugin of the next ABI major is refused by the loader and by the manager, with
/// both crate versions and both ABI versions in the one-line reason, and is not left
/// mapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_major_plugin_is_refused_naming_both_versions() {
    let expected = "incompatible ABI: built against tfo-plugin-api 0.2.0 layout=standard, \
                    host speaks tfo-plugin-api 0.1.1 layout=standard: plugin ABI 2.0, host \
                    ABI 1.2: a different ABI major is never compatible; rebuild the plugin \
                    against a tfo-plugin-api with ABI 1.x (x <= 2)";
    let (dir, shadow) = dirs();
    let path = install(dir.path(), &fixture("abi_next_major"), "abi_next_major");
    let file = files::trust(&path, None).unwrap();
    let err = library::load(&file, shadow.path()).expect_err("ABI 2.0 must be refused");
    assert_eq!(err.0, expected);
    // The shadow copy is gone and nothing of it stays mapped.
    assert_eq!(fs::read_dir(shadow.path()).unwrap().count(), 0);

    let mgr = PluginManager::start(
        options(dir.path(), shadow.path()),
        vec![spec("next", "abi-next-major", serde_json::json!({}))],
    )
    .await
    .unwrap();
    let refusals = mgr.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].reason, expected);
    assert!(mgr.libraries().await.is_empty());
    mgr.shutdown().await;
}

/// `tfo-agent plugins inspect` says which ABI each was built for and whether it
/// loads.
#[test]
fn inspect_prints_the_compatibility_of_each() {
    let prev = fixture("abi_prev_minor");
    let (code, out, err) = agent(&["plugins", "inspect", prev.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("name:               abi-prev-minor"), "{out}");
    assert!(
        out.contains("compatible:         yes (tfo-plugin-api 0.1.1 layout=standard, ABI 1.2)"),
        "{out}"
    );
    let (code, out, _) = agent(&["plugins", "inspect", prev.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["compatible"], true);
    assert_eq!(v["abi_version"], "1.0");
    assert_eq!(
        v["abi_compatibility"],
        "plugin ABI 1.0, host ABI 1.2: older minor of the same major, accepted"
    );

    let next = fixture("abi_next_major");
    let (code, out, err) = agent(&["plugins", "inspect", next.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(
            "not loadable: incompatible ABI: built against tfo-plugin-api 0.2.0 \
             layout=standard, host speaks tfo-plugin-api 0.1.1 layout=standard: plugin ABI \
             2.0, host ABI 1.2: a different ABI major is never compatible"
        ),
        "{err}"
    );
}

/// Evidence for the loader's orientation: abi_stable's checker, given the host as
/// the interface (its native use: `RootModule::load_from`), refuses the ABI 1.0
/// plugin because the host's `PluginInstance` vtable has one more trailing entry;
/// with the plugin as the interface it accepts. Also shows that the refusal is the
/// checker's per-type rule, not the fresh `CheckingGlobals` the loader uses (the
/// globals are only consulted after the per-type checks pass).
#[test]
fn abi_stable_accepts_fewer_trailing_methods_only_on_the_interface_side() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libtfo_abi_prev_minor_evidence.so");
    fs::copy(fixture("abi_prev_minor"), &copy).unwrap();
    let raw = RawLibrary::load_at(&copy).unwrap();
    let header = unsafe { abi_header_from_raw_library(&raw) }
        .unwrap()
        .upgrade()
        .unwrap();
    let IsLayoutChecked::Yes(plugin) = header.root_mod_consts().layout() else {
        panic!("the plugin carries no layout");
    };
    let host = <PluginModRef as StableAbi>::LAYOUT;

    let native = check_layout_compatibility_with_globals(host, plugin, &CheckingGlobals::new())
        .expect_err("host as interface: refused");
    let text = native.to_string();
    assert!(text.contains("too many fields"), "{text}");
    drop(native);

    check_layout_compatibility_with_globals(plugin, host, &CheckingGlobals::new())
        .expect("plugin as interface: accepted");
    drop(raw);
}
