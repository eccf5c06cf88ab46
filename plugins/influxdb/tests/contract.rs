//! Contract tests against a strict local server (tfo-plugin-common's TestServer),
//! driving the plugin through its exported root module as the agent does:
//! - the InfluxDB 2.x request exactly as the API reference describes it: `POST
//!   /api/v2/write` with `org`, `bucket` and `precision` query parameters,
//!   `Authorization: Token <token>`, `Content-Type: text/plain; charset=utf-8`,
//!   `Content-Encoding: gzip` with a body this test gunzips itself (flate2);
//! - the 1.x request (`/write?db=&rp=&precision=u`, Basic credentials);
//! - the documented error answers: 429 and 503 with `Retry-After` (retryable, delay
//!   kept), 500 (retryable), 400 with InfluxDB 2's JSON error body (permanent, never
//!   re-sent), 401 and 404 (permanent, remaining requests not sent), 413 (split);
//! - splitting a batch by `batch_size` and `max_body_bytes`, NaN points skipped and
//!   not counted as accepted, health, preview, HTTPS with a private CA.

mod support;

use std::{io::Read as _, time::Duration};

use tfo_plugin_api::{
    __private::abi_stable::std_types::{ROption, RResult},
    ErrorKind, HealthState, KeyValue, PointValue,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

use support::*;

const WAIT: Duration = Duration::from_secs(10);
const T: u64 = 1_700_000_000_123_456_789;

/// Splits `/path?a=b&c=d` into the path and the percent-decoded query pairs.
fn split_path(path: &str) -> (String, Vec<(String, String)>) {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    let pairs = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    (p.to_string(), pairs)
}

/// The body gunzipped by the test itself (not the server's decoding).
fn gunzip(r: &RecordedRequest) -> String {
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut out = String::new();
    flate2::read::GzDecoder::new(&r.raw_body[..])
        .read_to_string(&mut out)
        .expect("a valid gzip body");
    out
}

fn v2_config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"url": "{}", "version": 2, "organization": "my org", "bucket": "tele/metrics",
            "token": "s3cr3t-t0ken==", "precision": "ms"{extra}}}"#,
        server.url("/influx/")
    )
}

fn points(n: usize, t: u64) -> tfo_plugin_api::Batch {
    batch(
        (0..n)
            .map(|i| {
                gauge(
                    "cpu",
                    PointValue::Int(i as i64),
                    t,
                    vec![KeyValue::new("core", i as i64)],
                )
            })
            .collect(),
    )
}

fn export(
    inst: &mut tfo_plugin_api::PluginInstanceBox,
    b: &tfo_plugin_api::Batch,
) -> Result<u64, tfo_plugin_api::PluginError> {
    tfo_plugin_api::testing::export(inst, b).map(|ok| ok.accepted)
}

#[test]
fn v2_request_is_as_documented() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, ""));
    let b = batch(vec![
        gauge(
            "room temp",
            PointValue::Double(21.5),
            T,
            vec![KeyValue::new("room", TRICKY)],
        ),
        gauge("nan", PointValue::Double(f64::NAN), T, vec![]),
        histogram("rpc.duration", [1, 2, 3, 4], 6.5, T),
    ]);
    // Three points, the NaN one skipped: two accepted.
    assert_eq!(export(&mut inst, &b).unwrap(), 2);

    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    let (path, query) = split_path(&r.path);
    assert_eq!(path, "/influx/api/v2/write");
    assert_eq!(
        query,
        [
            ("org".to_string(), "my org".to_string()),
            ("bucket".into(), "tele/metrics".into()),
            ("precision".into(), "ms".into())
        ]
    );
    assert_eq!(r.header("authorization"), Some("Token s3cr3t-t0ken=="));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("user-agent").unwrap().starts_with("tfo-agent/"));
    let body = gunzip(r);
    assert_eq!(body, r.text());
    assert_eq!(
        body,
        concat!(
            r#"room\ temp,host.name=h\ 1,room=a\ b\,c\=d"e\f,service.name=tfo-test value=21.5 1700000000123"#,
            "\n",
            r"rpc.duration,host.name=h\ 1,service.name=tfo-test count=10i,sum=6.5,0.1=1i,0.5=3i,1=6i,+Inf=10i 1700000000123",
            "\n"
        )
    );
    assert!(matches!(inst.health().state, HealthState::Healthy));
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn v1_request_is_as_documented() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &format!(
            r#"{{"url": "{}", "database": "tfo db", "retention_policy": "one week",
                "username": "agent", "password": "p:w d", "precision": "us", "gzip": false}}"#,
            server.url("")
        ),
    );
    assert_eq!(export(&mut inst, &points(1, T)).unwrap(), 1);
    let r = &server.wait_for_requests(1, WAIT)[0];
    let (path, query) = split_path(&r.path);
    assert_eq!(path, "/write");
    assert_eq!(
        query,
        [
            ("db".to_string(), "tfo db".to_string()),
            ("rp".into(), "one week".into()),
            // InfluxDB 1.x spells microseconds `u`.
            ("precision".into(), "u".into())
        ]
    );
    // base64("agent:p:w d")
    assert_eq!(r.header("authorization"), Some("Basic YWdlbnQ6cDp3IGQ="));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        r.text(),
        "cpu,core=0,host.name=h\\ 1,service.name=tfo-test value=0i 1700000000123456\n"
    );
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn retryable_answers_keep_retry_after() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, ""));
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "7")
            .header("Content-Type", "application/json")
            .body(r#"{"code":"too many requests","message":"org exceeded its write limit"}"#),
    );
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "2"));
    server.push_response(
        ScriptedResponse::status(500).body(
            r#"{"code":"internal error","message":"engine: cache-max-memory-size exceeded"}"#,
        ),
    );
    let b = points(2, T);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms, ROption::RSome(7000));
    assert!(e.message.contains("429"), "{e}");
    assert!(matches!(inst.health().state, HealthState::Unhealthy));
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms, ROption::RSome(2000));
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms, ROption::RNone);
    assert!(e.message.contains("cache-max-memory-size"), "{e}");
    // The server recovers: delivered, healthy again.
    assert_eq!(export(&mut inst, &b).unwrap(), 2);
    assert!(matches!(inst.health().state, HealthState::Healthy));
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn bad_request_is_permanent_and_not_resent() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, ""));
    // InfluxDB 2's answer to a malformed line.
    server.push_response(
        ScriptedResponse::status(400)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(r#"{"code":"invalid","message":"unable to parse 'cpu value=': missing field value"}"#),
    );
    let e = export(&mut inst, &points(3, T)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("refused 3 of 3 lines"), "{e}");
    assert!(e.message.contains("missing field value"), "{e}");
    assert_eq!(server.requests().len(), 1);
    assert!(matches!(inst.health().state, HealthState::Unhealthy));

    // One refused request of two: the other one's lines are accepted, nothing is
    // retried, and the refusal is logged.
    let mut inst = started(&h, &v2_config(&server, r#", "batch_size": 2"#));
    server.push_response(
        ScriptedResponse::status(400).body(r#"{"code":"invalid","message":"partial write error"}"#),
    );
    assert_eq!(export(&mut inst, &points(4, T)).unwrap(), 2);
    assert_eq!(server.requests().len(), 3);
    assert!(
        h.logs()
            .iter()
            .any(|(_, l)| l.contains("refused 2 of 4 lines")),
        "{:?}",
        h.logs()
    );
}

#[test]
fn auth_and_not_found_stop_the_batch() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, r#", "batch_size": 1"#));
    server.push_response(
        ScriptedResponse::status(401)
            .body(r#"{"code":"unauthorized","message":"unauthorized access"}"#),
    );
    let e = export(&mut inst, &points(3, T)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("credentials"), "{e}");
    // The other two requests would be refused as well: not sent.
    assert_eq!(server.requests().len(), 1);

    // 404 after one request went through: permanent, with what was accepted.
    server.push_response(ScriptedResponse::status(204));
    server.push_response(
        ScriptedResponse::status(404)
            .body(r#"{"code":"not found","message":"bucket \"tele/metrics\" not found"}"#),
    );
    let e = export(&mut inst, &points(3, T)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("not found"), "{e}");
    assert!(e.message.contains("tele/metrics"), "{e}");
    assert_eq!(e.accepted, 1);
    assert_eq!(server.requests().len(), 3);
    assert!(matches!(inst.health().state, HealthState::Unhealthy));
}

#[test]
fn too_large_is_split_in_halves() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, ""));
    server.push_response(ScriptedResponse::status(413).body(
        r#"{"code":"request too large","message":"unable to read data: request body too large"}"#,
    ));
    server.push_response(ScriptedResponse::status(413));
    assert_eq!(export(&mut inst, &points(4, T)).unwrap(), 4);
    let reqs = server.requests();
    let lines: Vec<usize> = reqs.iter().map(|r| r.text().lines().count()).collect();
    // 4 refused -> 2 refused -> 1 + 1, then the other 2.
    assert_eq!(lines, [4, 2, 1, 1, 2]);
    let sent: String = reqs[2..].iter().map(|r| r.text()).collect();
    assert_eq!(sent, reqs[0].text());
}

#[test]
fn batches_are_split_by_lines_and_bytes() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, r#", "batch_size": 3"#));
    let b = points(7, T);
    assert_eq!(export(&mut inst, &b).unwrap(), 7);
    let reqs = server.requests();
    assert_eq!(
        reqs.iter()
            .map(|r| r.text().lines().count())
            .collect::<Vec<_>>(),
        [3, 3, 1]
    );
    let all: Vec<String> = reqs
        .iter()
        .flat_map(|r| r.text().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for i in 0..7 {
        assert_eq!(
            all.iter()
                .filter(|l| l.starts_with(&format!("cpu,core={i},")))
                .count(),
            1
        );
    }

    // By bytes: 30 lines of about 72 bytes need at least 3 bodies of 1024 bytes.
    let server = TestServer::http();
    let mut inst = started(&h, &v2_config(&server, r#", "max_body_bytes": 1024"#));
    assert_eq!(export(&mut inst, &points(30, T)).unwrap(), 30);
    let reqs = server.requests();
    assert!(reqs.len() >= 3, "{}", reqs.len());
    assert!(reqs.iter().all(|r| r.body.len() <= 1024));
    assert_eq!(
        reqs.iter().map(|r| r.text().lines().count()).sum::<usize>(),
        30
    );
}

#[test]
fn preview_sends_nothing() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = started(&h, &v2_config(&server, ""));
    let b = batch(vec![
        gauge("m", PointValue::Double(1.0), T, vec![]),
        gauge("m", PointValue::Double(f64::INFINITY), T, vec![]),
    ]);
    let text = match inst.preview(&b) {
        RResult::ROk(s) => s.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    assert!(text.starts_with("POST http://127.0.0.1:"), "{text}");
    assert!(
        text.contains("/influx/api/v2/write?org=my%20org&bucket=tele%2Fmetrics&precision=ms\n"),
        "{text}"
    );
    assert!(
        text.contains("m,host.name=h\\ 1,service.name=tfo-test value=1 1700000000123\n"),
        "{text}"
    );
    assert!(text.contains("# skipped: non_finite=1"), "{text}");
    assert!(server.requests().is_empty());
}

#[test]
fn https_with_a_private_ca() {
    let server = TestServer::https();
    let h = TestHost::default();
    let ca = server.ca_file().display().to_string();
    let mut inst = started(&h, &v2_config(&server, &format!(r#", "ca_file": "{ca}""#)));
    assert_eq!(export(&mut inst, &points(1, T)).unwrap(), 1);
    // Without the CA the certificate is not trusted: a transport error, retryable.
    let mut inst = started(&h, &v2_config(&server, ""));
    let e = export(&mut inst, &points(1, T)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn config_errors_carry_paths() {
    let h = TestHost::default();
    match create(
        &h,
        r#"{"url": "localhost:8086", "version": 2, "precision": "ms", "batch_size": 0}"#,
    ) {
        RResult::RErr(e) => {
            let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
            assert_eq!(paths, ["url", "organization", "bucket", "batch_size"]);
        }
        RResult::ROk(_) => panic!("accepted a bad config"),
    }
    match create(
        &h,
        r#"{"url": "http://h", "database": "d", "precison": "s"}"#,
    ) {
        RResult::RErr(e) => {
            assert!(
                e.config_errors[0]
                    .message
                    .contains("unknown field `precison`"),
                "{e:?}"
            );
        }
        RResult::ROk(_) => panic!("accepted an unknown key"),
    }
}
