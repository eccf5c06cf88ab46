//! Remote write against the strict local HTTPS server: the request as the 1.0 spec
//! prescribes it (method, headers, credentials), the body decoded independently
//! (Snappy block format and protobuf wire format decoders in `support`, written
//! from the format descriptions), and the documented error answers: 429 with
//! Retry-After (retryable, delay carried to the host), 400 (permanent), 500
//! (retryable), a transport error, and TLS verification.

mod support;

use std::time::Duration;

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, ErrorKind, HealthState, KeyValue, PluginError,
    PluginInstanceBox, PointValue, Temporality,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

use support::*;

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"listen": "", "remote_write": {{"url": "{}", "ca_file": {:?}, "timeout": "5s" {extra}}}}}"#,
        server.url("/api/v1/write?tenant=a"),
        server.ca_file().display().to_string(),
    )
}

fn export(inst: &mut PluginInstanceBox, b: &tfo_plugin_api::Batch) -> Result<u64, PluginError> {
    match inst.export(b) {
        RResult::ROk(ok) => Ok(ok.accepted),
        RResult::RErr(e) => Err(e),
    }
}

fn decode(req: &RecordedRequest) -> Vec<WireSeries> {
    let raw = snappy_block_decode(&req.raw_body).expect("snappy block");
    decode_write_request(&raw).expect("WriteRequest")
}

fn one_gauge(value: f64, time: u64) -> tfo_plugin_api::Batch {
    batch(vec![gauge(
        "room.temperature",
        "Temperature.",
        "Cel",
        value,
        time,
        vec![KeyValue::new("room", "lab")],
    )])
}

#[test]
fn request_headers_and_body_follow_the_spec() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &config(
            &server,
            r#", "headers": {"X-Scope-OrgID": "tenant-1"},
               "basic_auth": {"username": "agent", "password": "s3cret"}"#,
        ),
    );
    let t = now_ns();
    let b = batch(vec![
        gauge(
            "room.temperature",
            "Temperature.",
            "Cel",
            21.5,
            t,
            vec![KeyValue::new("room", "lab"), KeyValue::new("Zone", "z1")],
        ),
        counter(
            "jobs.done",
            "Jobs.",
            Temporality::Cumulative,
            t - 60_000_000_000,
            t,
            PointValue::Int(42),
        ),
        histogram("rpc.duration", "RPC latency.", [1, 2, 3, 4], 6.5, t - 1, t),
    ]);
    assert_eq!(export(&mut inst, &b).unwrap(), 3);

    let reqs = server.wait_for_requests(1, Duration::from_secs(5));
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.path, "/api/v1/write?tenant=a");
    assert_eq!(req.header("content-encoding"), Some("snappy"));
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        req.header("x-prometheus-remote-write-version"),
        Some("0.1.0")
    );
    assert_eq!(
        req.header("user-agent"),
        Some(concat!("tfo-agent/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(req.header("x-scope-orgid"), Some("tenant-1"));
    // base64("agent:s3cret")
    assert_eq!(req.header("authorization"), Some("Basic YWdlbnQ6czNjcmV0"));
    // Block format, not framed: the framed format starts with chunk type 0xff.
    assert_ne!(req.raw_body[0], 0xff);

    let series = decode(req);
    let ms = (t / 1_000_000) as i64;
    let mut got: Vec<String> = series
        .iter()
        .map(|s| {
            // Labels MUST be sorted by name, with __name__ present, no empty values.
            let names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(names, sorted, "labels not sorted/unique: {s:?}");
            assert!(s.label("__name__").is_some(), "{s:?}");
            assert!(s.labels.iter().all(|(_, v)| !v.is_empty()), "{s:?}");
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let samples: Vec<String> = s
                .samples
                .iter()
                .map(|(v, ts)| format!("{v}@{ts}"))
                .collect();
            format!("{} {}", labels.join(","), samples.join(","))
        })
        .collect();
    got.sort();
    let r = "instance=i-1,job=tfo-test";
    let mut want = vec![
        format!("Zone=z1,__name__=room_temperature_celsius,{r},room=lab 21.5@{ms}"),
        format!("__name__=jobs_done_total,{r} 42@{ms}"),
        format!("__name__=rpc_duration_seconds_bucket,{r},le=0.1 1@{ms}"),
        format!("__name__=rpc_duration_seconds_bucket,{r},le=0.5 3@{ms}"),
        format!("__name__=rpc_duration_seconds_bucket,{r},le=1.0 6@{ms}"),
        format!("__name__=rpc_duration_seconds_bucket,{r},le=+Inf 10@{ms}"),
        format!("__name__=rpc_duration_seconds_sum,{r} 6.5@{ms}"),
        format!("__name__=rpc_duration_seconds_count,{r} 10@{ms}"),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn too_many_requests_is_retryable_with_the_servers_delay() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "7")
            .body("rate limited"),
    );
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = one_gauge(1.0, now_ns());
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    assert!(
        e.message.contains("429") && e.message.contains("rate limited"),
        "{e}"
    );
    assert!(e.message.contains("/api/v1/write"), "{e}");
    let health = inst.health();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(health.reason.contains("429"), "{health:?}");

    // The host retries the same batch; the script is used up, so it is accepted.
    assert_eq!(export(&mut inst, &b).unwrap(), 1);
    assert_eq!(inst.health().state, HealthState::Healthy);
    let reqs = server.wait_for_requests(2, Duration::from_secs(5));
    assert_eq!(
        reqs[0].raw_body, reqs[1].raw_body,
        "the retry must resend the same data"
    );
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn bad_request_is_permanent() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(400).body("out of order sample for series room_temperature"),
    );
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, r#", "bearer_token": "tok""#));
    let e = export(&mut inst, &one_gauge(1.0, now_ns())).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), None);
    assert!(
        e.message.contains("400") && e.message.contains("out of order"),
        "{e}"
    );
    let req = &server.requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer tok"));
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn server_errors_are_retryable() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(500).body("internal"));
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "2"));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = one_gauge(1.0, now_ns());
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(
        (e.kind, e.retry_after_ms.into_option()),
        (ErrorKind::Retryable, None)
    );
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(
        (e.kind, e.retry_after_ms.into_option()),
        (ErrorKind::Retryable, Some(2000))
    );
    assert!(export(&mut inst, &b).is_ok());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn a_failed_delivery_does_not_count_deltas_twice() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(503));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let t = now_ns();
    let delta = |v: i64, at: u64| {
        batch(vec![counter(
            "jobs.done",
            "Jobs.",
            Temporality::Delta,
            at - 1_000_000_000,
            at,
            PointValue::Int(v),
        )])
    };
    let first = delta(5, t);
    assert!(export(&mut inst, &first).is_err()); // 503
    assert!(export(&mut inst, &first).is_ok()); // the host's retry
    assert!(export(&mut inst, &delta(4, t + 1_000_000_000)).is_ok());
    let reqs = server.wait_for_requests(3, Duration::from_secs(5));
    let values: Vec<f64> = reqs
        .iter()
        .map(|r| {
            let s = decode(r);
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].label("__name__"), Some("jobs_done_total"));
            s[0].samples[0].0
        })
        .collect();
    assert_eq!(values, [5.0, 5.0, 9.0]);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let h = TestHost::default();
    // No ca_file: the test CA is not trusted.
    let cfg = format!(
        r#"{{"listen": "", "remote_write": {{"url": "{}"}}}}"#,
        server.url("/w")
    );
    let mut inst = started(&h, &cfg);
    let e = export(&mut inst, &one_gauge(1.0, now_ns())).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("certificate"), "{e}");
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn connection_refused_is_retryable() {
    let port = free_port();
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &format!(r#"{{"listen": "", "remote_write": {{"url": "http://127.0.0.1:{port}/w"}}}}"#),
    );
    let e = export(&mut inst, &one_gauge(1.0, now_ns())).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn an_empty_batch_sends_nothing() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &format!(
            r#"{{"listen": "", "remote_write": {{"url": "{}"}}}}"#,
            server.url("/w")
        ),
    );
    assert_eq!(export(&mut inst, &batch(vec![])).unwrap(), 0);
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn an_unreadable_ca_file_is_a_config_error() {
    let cfg = r#"{"remote_write": {"url": "https://h/w", "ca_file": "/nonexistent/ca.pem"}}"#;
    match create(&TestHost::default(), cfg) {
        RResult::ROk(_) => panic!("should be refused"),
        RResult::RErr(e) => {
            assert_eq!(
                e.config_errors[0].path.as_str(),
                "remote_write.ca_file",
                "{e:?}"
            );
        }
    }
}
