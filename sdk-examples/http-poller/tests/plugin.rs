//! End to end through the exported root module, the way the agent drives the plugin
//! (descriptor, `create` with a JSON config, `start`, `collect`, `health`,
//! `shutdown`), against a strict local HTTP server (tests/server) serving JSON.
//! `tfo_plugin_api::testing` gives the recording host and the root module.

mod server;

use std::time::Duration;

use server::{Pki, Reply, Server};
use tfo_plugin_api::{
    testing::{create, TestHost},
    Batch, CreateError, DataTypes, EmitStatus, ErrorKind, HealthState, KeyValue, Metric,
    MetricKind, PluginError, PluginInstanceBox, PluginKind, PluginModRef, PointValue,
};

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_http_poller)
}

const STATS: &str = r#"{"queue": {"depth": 12, "sent": "4711", "paused": false},
                        "pools": [{"name": "main", "free": 0.25}]}"#;

fn new(host: &TestHost, config: serde_json::Value) -> Result<PluginInstanceBox, CreateError> {
    create(module(), host, "poller", &config.to_string())
}

fn started(host: &TestHost, config: serde_json::Value) -> PluginInstanceBox {
    let mut inst = new(host, config).unwrap_or_else(|e| panic!("create: {e:?}"));
    inst.start().into_result().expect("start");
    inst
}

fn collect(inst: &mut PluginInstanceBox) -> Result<Batch, PluginError> {
    inst.collect().into_result()
}

fn value(m: &Metric) -> f64 {
    match m.points[0].value {
        PointValue::Double(d) => d,
        ref other => panic!("not a double: {other:?}"),
    }
}

/// A config polling `server` for `metrics`.
fn config(server: &Server, metrics: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "url": server.url(), "timeout": "2s", "metrics": metrics })
}

#[test]
fn descriptor_describes_a_metrics_source() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "http-poller");
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(d.kind, PluginKind::Source);
    assert_eq!(d.data_types, DataTypes::METRICS);
    assert_eq!(
        d.plugin_api_version.as_str(),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
}

#[test]
fn polls_and_extracts_values() {
    let server = Server::start("/v1/stats?verbose=1", Reply::json(STATS));
    let mut cfg = config(
        &server,
        serde_json::json!([
            {"name": "queue.depth", "json_pointer": "/queue/depth", "unit": "{message}"},
            {"name": "queue.sent", "json_pointer": "/queue/sent", "kind": "counter",
             "unit": "{message}", "attributes": {"queue": "q1", "dc": "eu"}},
            {"name": "queue.paused", "json_pointer": "/queue/paused"},
            {"name": "pool.free", "json_pointer": "/pools/0/free", "attributes": {"pool": "main"}},
        ]),
    );
    cfg["headers"] = serde_json::json!({"Authorization": "Bearer s3cret", "X-Tenant": "t1"});
    let host = TestHost::default();
    let mut inst = started(&host, cfg);
    assert_eq!(inst.health().state, HealthState::Initializing);

    let batch = collect(&mut inst).expect("collect");
    let names: Vec<&str> = batch.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["queue.depth", "queue.sent", "queue.paused", "pool.free"]
    );
    let m = &batch.metrics;
    assert_eq!(
        [value(&m[0]), value(&m[1]), value(&m[2]), value(&m[3])],
        [12.0, 4711.0, 0.0, 0.25]
    );
    assert_eq!(m[0].kind, MetricKind::Gauge);
    assert_eq!(m[0].unit.as_str(), "{message}");
    assert_eq!(m[1].kind, MetricKind::Sum);
    assert!(m[1].is_monotonic);
    let p = &m[1].points[0];
    assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
    // Attributes come out sorted by key (the config is a map).
    assert_eq!(
        p.attributes.as_slice(),
        [KeyValue::new("dc", "eu"), KeyValue::new("queue", "q1")]
    );
    assert_eq!(m[2].unit.as_str(), "1");
    assert_eq!(inst.health().state, HealthState::Healthy);

    // What went over the wire (the server already refused anything but a body-less
    // GET of the configured path).
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("GET", "/v1/stats?verbose=1")
    );
    assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(r.header("x-tenant"), Some("t1"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(r
        .header("user-agent")
        .is_some_and(|u| u.starts_with("tfo-http-poller/")));
    assert_eq!(r.header("host"), Some(server.addr.to_string().as_str()));

    // A second collect polls again.
    collect(&mut inst).expect("second collect");
    assert_eq!(server.requests().len(), 2);
    inst.shutdown(2000).into_result().expect("shutdown");
    // Logging goes through `tracing`, bridged to the host.
    host.wait_for_log("http poller ready for http://", Duration::from_secs(1));
    assert!(host.panics().is_empty());
}

#[test]
fn bad_json_is_a_permanent_error_and_unhealthy_until_it_recovers() {
    let server = Server::start("/s", Reply::json(STATS));
    server.script([Reply::Answer(
        200,
        vec![("Content-Type", "text/html".into())],
        b"<html>maintenance</html>".to_vec(),
    )]);
    let host = TestHost::default();
    let mut inst = started(
        &host,
        config(
            &server,
            serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
        ),
    );
    let e = collect(&mut inst).expect_err("html is not JSON");
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(
        e.message
            .contains("the response is not JSON: expected value at line 1 column 1"),
        "{e}"
    );
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("not JSON"), "{h:?}");
    // The server is fixed: the next poll works and health follows.
    let b = collect(&mut inst).expect("collect after recovery");
    assert_eq!(value(&b.metrics[0]), 12.0);
    assert_eq!(inst.health().state, HealthState::Healthy);
    inst.shutdown(2000).into_result().unwrap();
    assert!(host.panics().is_empty());
}

#[test]
fn a_missing_pointer_gives_a_partial_result_and_says_which() {
    let server = Server::start("/s", Reply::json(STATS));
    let host = TestHost::default();
    let mut inst = started(
        &host,
        config(
            &server,
            serde_json::json!([
                {"name": "depth", "json_pointer": "/queue/depth"},
                {"name": "gone", "json_pointer": "/queue/gone"},
                {"name": "name", "json_pointer": "/pools/0/name"},
            ]),
        ),
    );
    let b = collect(&mut inst).expect("partial result");
    assert_eq!(b.metrics.len(), 1);
    assert_eq!(b.metrics[0].name.as_str(), "depth");
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("2 of 3 metrics not found"), "{h:?}");
    assert!(
        h.reason
            .contains(r#"metrics[1] ("/queue/gone"): no value at this pointer"#),
        "{h:?}"
    );
    assert!(
        h.reason
            .contains(r#"metrics[2] ("/pools/0/name"): the string "main" is not a number"#),
        "{h:?}"
    );
    host.wait_for_log("2 of 3 metrics not found", Duration::from_secs(1));
    // The same failure again is in health, but not logged again.
    collect(&mut inst).expect("partial result");
    let warned = host
        .logs()
        .iter()
        .filter(|(_, l)| l.contains("metrics not found"))
        .count();
    assert_eq!(warned, 1, "{:?}", host.logs());
    inst.shutdown(2000).into_result().unwrap();
}

#[test]
fn no_value_found_at_all_is_an_error() {
    let server = Server::start("/s", Reply::json(r#"{"other": 1}"#));
    let host = TestHost::default();
    let mut inst = started(
        &host,
        config(
            &server,
            serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
        ),
    );
    let e = collect(&mut inst).expect_err("nothing found");
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(
        e.message.contains("none of the configured metrics found"),
        "{e}"
    );
    assert_eq!(inst.health().state, HealthState::Unhealthy);
    inst.shutdown(2000).into_result().unwrap();
}

#[test]
fn http_errors_are_classified() {
    let server = Server::start("/s", Reply::json(STATS));
    server.script([
        Reply::Answer(503, vec![("Retry-After", "3".into())], b"busy".to_vec()),
        Reply::Answer(404, vec![], b"no such page".to_vec()),
        Reply::json(&format!(
            r#"{{"queue": {{"depth": 1}}, "pad": "{}"}}"#,
            "x".repeat(200)
        )),
        Reply::Hang,
    ]);
    let host = TestHost::default();
    let mut cfg = config(
        &server,
        serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
    );
    cfg["max_response_bytes"] = 100.into();
    cfg["timeout"] = "300ms".into();
    let mut inst = started(&host, cfg);

    let e = collect(&mut inst).expect_err("503");
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));
    assert!(e.message.contains("HTTP 503"), "{e}");

    let e = collect(&mut inst).expect_err("404");
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("HTTP 404"), "{e}");

    let e = collect(&mut inst).expect_err("too large");
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(
        e.message.contains("larger than max_response_bytes (100)"),
        "{e}"
    );

    let e = collect(&mut inst).expect_err("no answer");
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("no complete answer within 300ms"), "{e}");
    assert!(inst.health().reason.contains("no complete answer"));
    inst.shutdown(2000).into_result().unwrap();
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn connection_refused_is_retryable() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = TestHost::default();
    let mut inst = started(
        &host,
        serde_json::json!({"url": format!("http://127.0.0.1:{port}/"),
                           "metrics": [{"name": "d", "json_pointer": "/d"}]}),
    );
    let e = collect(&mut inst).expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(
        e.message.to_lowercase().contains("connection refused"),
        "{e}"
    );
    inst.shutdown(2000).into_result().unwrap();
}

#[test]
fn invalid_config_reports_every_field_with_its_path() {
    let host = TestHost::default();
    let e = new(
        &host,
        serde_json::json!({"url": "ftp://h/x", "timeout": "0s", "headers": {"Bad Name": "v"},
                           "metrics": [{"name": "a", "json_pointer": "a"},
                                       {"name": "a", "json_pointer": "/b"}]}),
    )
    .err()
    .expect("create must fail");
    assert_eq!(e.message.as_str(), "invalid configuration");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "url",
            "headers.Bad Name",
            "timeout",
            "metrics[0].json_pointer",
            "metrics[1].name"
        ]
    );

    // Unknown keys and type errors come from serde, with the path too.
    let e = new(
        &host,
        serde_json::json!({"url": "http://h/", "metrics": [], "intervall": 5}),
    )
    .err()
    .expect("unknown key");
    assert_eq!(e.config_errors[0].path.as_str(), "intervall");
    let e = new(
        &host,
        serde_json::json!({"url": "http://h/",
                           "metrics": [{"name": "a", "json_pointer": "/a", "kind": "histogram"}]}),
    )
    .err()
    .expect("bad kind");
    assert_eq!(e.config_errors[0].path.as_str(), "metrics[0].kind");
    assert!(
        e.config_errors[0]
            .message
            .contains("unknown variant `histogram`"),
        "{e:?}"
    );
    let e = new(&host, serde_json::json!({"metrics": []}))
        .err()
        .expect("no url");
    assert!(
        e.config_errors[0].message.contains("missing field `url`"),
        "{e:?}"
    );
}

/// Threads of this process whose name is `name` (as the kernel keeps it, at most
/// 15 bytes).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn push_mode_emits_backs_off_when_full_and_stops_on_shutdown() {
    let server = Server::start("/s", Reply::json(STATS));
    let host = TestHost::default();
    // The host's first answer is Full: that batch is dropped and counted.
    host.answer(&[EmitStatus::Full]);
    let mut cfg = config(
        &server,
        serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
    );
    cfg["push_interval"] = "20ms".into();

    // Run the instance on a thread with a name of its own, as the agent does: the
    // SDK names the instance runtime's threads after it, so they can be counted.
    const NAME: &str = "poller-push-t";
    let h = host.clone();
    let (during, after) = std::thread::Builder::new()
        .name(NAME.into())
        .spawn(move || {
            let mut inst = started(&h, cfg);
            // Pushed batches arrive without any collect.
            assert!(
                h.wait_for_batches(2, Duration::from_secs(10)),
                "no batches pushed: {:?}",
                h.logs()
            );
            // In push mode the host's own collect calls get nothing.
            assert!(collect(&mut inst).expect("collect").is_empty());
            let during = threads_named(NAME);
            inst.shutdown(2000).into_result().expect("shutdown");
            let after = threads_named(NAME);
            drop(inst);
            (during, after)
        })
        .unwrap()
        .join()
        .expect("instance thread");

    // While running: this thread plus the runtime's workers; after shutdown only
    // this thread was left (the runtime's threads were joined).
    assert!(during >= 3, "runtime threads while running: {during}");
    assert_eq!(after, 1, "threads left after shutdown");

    let batches = host.take_batches();
    assert!(batches.len() >= 2);
    for b in &batches {
        assert_eq!(b.metrics[0].name.as_str(), "d");
        assert_eq!(value(&b.metrics[0]), 12.0);
    }
    // Full was seen, logged and then cleared by accepted batches.
    host.wait_for_log("host queue full: batch dropped", Duration::from_secs(1));
    host.wait_for_log("host accepts batches again", Duration::from_secs(1));
    host.wait_for_log("push task stopped", Duration::from_secs(1));
    // One poll more than accepted batches at least (the dropped one).
    assert!(server.requests().len() > batches.len());
    // Nothing runs any more: no poll after shutdown.
    let polls = server.requests().len();
    assert!(!server.wait_for_requests(polls + 1, Duration::from_millis(200)));
    assert!(host.panics().is_empty());
}

#[test]
fn push_mode_ends_when_the_host_closes() {
    let server = Server::start("/s", Reply::json(STATS));
    let host = TestHost::default();
    host.answer(&[EmitStatus::Closed]);
    let mut cfg = config(
        &server,
        serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
    );
    cfg["push_interval"] = "10ms".into();
    let mut inst = started(&host, cfg);
    host.wait_for_log("host closed the instance", Duration::from_secs(5));
    // The task ended on its own: exactly one poll, and shutdown still succeeds.
    assert!(!server.wait_for_requests(2, Duration::from_millis(200)));
    inst.shutdown(2000).into_result().expect("shutdown");
    assert!(host.batches().is_empty());
}

/// A file in the temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("tfo-http-poller-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn https_with_a_private_ca() {
    let pki = Pki::generate();
    let server = Server::start_tls("/s", Reply::json(STATS), &pki);
    let ca = TempFile::new("ca.pem", &pki.ca_pem);
    let mut cfg = config(
        &server,
        serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
    );
    assert!(server.url().starts_with("https://127.0.0.1:"));
    cfg["ca_file"] = ca.0.to_str().unwrap().into();
    let host = TestHost::default();
    let mut inst = started(&host, cfg);
    let b = collect(&mut inst).expect("collect over HTTPS");
    assert_eq!(value(&b.metrics[0]), 12.0);
    assert_eq!(server.requests().len(), 1);
    inst.shutdown(2000).into_result().unwrap();
}

#[test]
fn https_server_certificates_are_verified() {
    // The same server, but its CA is not trusted: the handshake must fail and no
    // request may reach the server.
    let pki = Pki::generate();
    let server = Server::start_tls("/s", Reply::json(STATS), &pki);
    let host = TestHost::default();
    let cfg = config(
        &server,
        serde_json::json!([{"name": "d", "json_pointer": "/queue/depth"}]),
    );
    match new(&host, cfg) {
        // A machine without a system CA store refuses https without ca_file at once.
        Err(e) => assert!(e.message.contains("no usable CA certificate"), "{e:?}"),
        Ok(mut inst) => {
            inst.start().into_result().unwrap();
            let e = collect(&mut inst).expect_err("untrusted certificate");
            assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
            assert!(e.message.contains("UnknownIssuer"), "{e}");
            inst.shutdown(2000).into_result().unwrap();
        }
    }
    assert!(server.requests().is_empty());
}

#[test]
fn an_unusable_ca_file_is_a_config_error() {
    let junk = TempFile::new("junk.pem", "not a certificate\n");
    let host = TestHost::default();
    let e = new(
        &host,
        serde_json::json!({"url": "https://127.0.0.1:1/", "ca_file": junk.0,
                           "metrics": [{"name": "d", "json_pointer": "/d"}]}),
    )
    .err()
    .expect("junk CA file");
    assert_eq!(e.config_errors.len(), 1, "{e:?}");
    assert_eq!(e.config_errors[0].path.as_str(), "ca_file");
    assert!(
        e.config_errors[0].message.contains("no PEM certificate"),
        "{e:?}"
    );
}
