//! SLS PutLogs through the plugin's exported entry points, against a strict local
//! HTTPS server. The test recomputes everything from what arrived: the signature
//! (in Rust here, written from the documentation, and in Python by
//! `tests/verify.py`), Content-MD5, the LZ4 block (lz4_flex here, the Python `lz4`
//! package there) or zlib body, and the LogGroup (decoded with an independently
//! declared message set). Also: the documented error answers (429 + Retry-After,
//! 5xx, write quota, signature refused, project missing), splitting at 4096 logs
//! with a retry that resends only the undelivered group, and no secret in any log
//! line or error.

mod common;

use common::*;
use hmac::Mac;
use prost::Message;
use serde_json::json;
use tfo_plugin_api::testing::export;
use tfo_plugin_api::{AnyValue, Batch, ErrorKind, KeyValue, LogRecord, Resource};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const T: u64 = 1_700_000_010_250_000_000;

fn record(i: usize) -> LogRecord {
    LogRecord {
        time_unix_nano: T + i as u64,
        observed_time_unix_nano: 0,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: AnyValue::Str(format!("failure {i}").into()),
        attributes: vec![KeyValue::new("user", "ann"), KeyValue::new("n", i as i64)].into(),
        trace_id: [0x5b; 16],
        span_id: [0x07; 8],
    }
}

fn batch(n: usize) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("host.name", "web-1"),
                KeyValue::new("service.name", "shop"),
            ]
            .into(),
        },
        logs: (0..n).map(record).collect::<Vec<_>>().into(),
        ..Batch::default()
    }
}

fn config(server: &TestServer, compression: &str) -> String {
    format!(
        r#"{{{}, "labels": {{"env": "prod"}},
            "sls": {{"project": "tfo-proj", "logstore": "app-logs", "topic": "agent",
                     "endpoint": "{}", "compression": "{compression}"}}}}"#,
        creds_json(server.ca_file()),
        server.url("")
    )
}

/// The SLS signature recomputed from the recorded request (documentation:
/// "Request signatures"), independently of the plugin's `sign` module.
fn expected_authorization(r: &RecordedRequest) -> String {
    let mut canon: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-log-") || k.as_str().starts_with("x-acs-"))
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    canon.sort();
    let mut sts = format!(
        "{}\n{}\n{}\n{}\n",
        r.method,
        r.header("content-md5").unwrap_or(""),
        r.header("content-type").unwrap_or(""),
        r.header("date").unwrap()
    );
    for (k, v) in canon {
        sts.push_str(&format!("{k}:{v}\n"));
    }
    sts.push_str(&r.path);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(sts.as_bytes());
    use base64::Engine;
    format!(
        "LOG {KEY_ID}:{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Checks headers and signature; returns the decompressed LogGroup bytes.
fn check_request(r: &RecordedRequest, compression: &str) -> Vec<u8> {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/logstores/app-logs/shards/lb");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("x-log-apiversion"), Some("0.6.0"));
    assert_eq!(r.header("x-log-signaturemethod"), Some("hmac-sha1"));
    assert_eq!(r.header("x-log-compresstype"), Some(compression));
    assert_eq!(r.header("x-acs-security-token"), Some(STS));
    let date = r.header("date").unwrap();
    let when = httpdate::parse_http_date(date).expect("RFC 1123 Date");
    let age = std::time::SystemTime::now()
        .duration_since(when)
        .unwrap_or_default();
    assert!(age.as_secs() < 60, "{date}");
    assert!(date.ends_with(" GMT"));
    let md5 = {
        use md5::Digest;
        md5::Md5::digest(&r.raw_body)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    };
    assert_eq!(r.header("content-md5"), Some(md5.as_str()));
    assert_eq!(
        r.header("authorization"),
        Some(expected_authorization(r).as_str())
    );
    let raw_size: usize = r.header("x-log-bodyrawsize").unwrap().parse().unwrap();
    let raw = match compression {
        "lz4" => lz4_flex::block::decompress(&r.raw_body, raw_size).unwrap(),
        _ => {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&r.raw_body[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
    };
    assert_eq!(raw.len(), raw_size);

    // The independent implementation agrees on signature, MD5 and body.
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap())))
        .collect();
    if let Some(out) = python(&json!({
        "cmd": "sls", "method": r.method.as_str(), "path": r.path, "headers": headers,
        "body_hex": r.raw_body.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "key_id": KEY_ID, "secret": SECRET,
    })) {
        assert_eq!(out["md5"], md5);
        assert_eq!(out["authorization"], r.header("authorization").unwrap());
        if out["lz4_missing"] == true {
            skip("the Python lz4 package is missing (pip install lz4): no independent LZ4 check");
        } else {
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(out["raw_hex"], hex);
        }
    }
    raw
}

fn check_group(raw: &[u8], first: usize, n: usize) {
    let g = wire::LogGroup::decode(raw).expect("a LogGroup");
    assert_eq!(g.topic.as_deref(), Some("agent"));
    assert_eq!(g.source.as_deref(), Some("web-1"));
    let tags: Vec<(&str, &str)> = g
        .log_tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(
        tags,
        [
            ("host.name", "web-1"),
            ("service.name", "shop"),
            ("env", "prod")
        ]
    );
    assert_eq!(g.logs.len(), n);
    for (j, log) in g.logs.iter().enumerate() {
        let i = first + j;
        assert_eq!(log.time, 1_700_000_010);
        assert_eq!(log.time_ns, Some(250_000_000 + i as u32));
        let c: Vec<(&str, &str)> = log
            .contents
            .iter()
            .map(|c| (c.key.as_str(), c.value.as_str()))
            .collect();
        let msg = format!("failure {i}");
        let n_str = i.to_string();
        assert_eq!(
            c,
            [
                ("level", "ERROR"),
                ("severity_number", "17"),
                ("message", msg.as_str()),
                ("trace_id", "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b"),
                ("span_id", "0707070707070707"),
                ("user", "ann"),
                ("n", n_str.as_str())
            ]
        );
    }
}

#[test]
fn put_logs_lz4_signed_and_decodable() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, "lz4")).unwrap_or_else(|e| panic!("{e:?}"));
    let ok = export(&mut inst, &batch(3)).unwrap();
    assert_eq!(ok.accepted, 3);
    let r = &server.wait_for_requests(1, WAIT)[0];
    let raw = check_request(r, "lz4");
    check_group(&raw, 0, 3);
    assert_no_secrets(&host, &[], &[]);
}

#[test]
fn put_logs_deflate() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, "deflate")).unwrap();
    export(&mut inst, &batch(2)).unwrap();
    let r = &server.wait_for_requests(1, WAIT)[0];
    let raw = check_request(r, "deflate");
    check_group(&raw, 0, 2);
}

#[test]
fn large_batches_split_and_a_retry_resends_only_the_rest() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, "lz4")).unwrap();
    let b = batch(5000);
    server.push_response(ScriptedResponse::status(200));
    server.push_response(
        ScriptedResponse::status(503).body(r#"{"errorCode":"ServerBusy","errorMessage":"busy"}"#),
    );
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.accepted, 4096);
    let ok = export(&mut inst, &b).unwrap();
    assert_eq!(ok.accepted, 5000);
    let reqs = server.wait_for_requests(3, WAIT);
    let groups: Vec<_> = reqs
        .iter()
        .map(|r| {
            let size: usize = r.header("x-log-bodyrawsize").unwrap().parse().unwrap();
            wire::LogGroup::decode(&lz4_flex::block::decompress(&r.raw_body, size).unwrap()[..])
                .unwrap()
        })
        .collect();
    assert_eq!(groups[0].logs.len(), 4096);
    assert_eq!(groups[1].logs.len(), 904);
    assert_eq!(groups[2], groups[1], "only the failed group was resent");
    check_request(&reqs[2], "lz4");
}

#[test]
fn documented_errors() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, "lz4")).unwrap();
    let b = batch(1);
    let mut errors = Vec::new();

    server.push_response(ScriptedResponse::status(429).header("Retry-After", "5"));
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(5000));
    errors.push(e);

    server.push_response(
        ScriptedResponse::status(500)
            .body(r#"{"errorCode":"InternalServerError","errorMessage":"oops"}"#),
    );
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    errors.push(e);

    server.push_response(
        ScriptedResponse::status(403).body(
            r#"{"errorCode":"WriteQuotaExceed","errorMessage":"Project write quota exceed"}"#,
        ),
    );
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    errors.push(e);

    for (status, code) in [
        (401, "SignatureNotMatch"),
        (404, "ProjectNotExist"),
        (400, "PostBodyInvalid"),
    ] {
        server.push_response(ScriptedResponse::status(status).body(format!(
            r#"{{"errorCode":"{code}","errorMessage":"refused"}}"#
        )));
        let e = export(&mut inst, &b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        assert!(e.message.contains(code), "{e}");
        errors.push(e);
    }
    let refs: Vec<&_> = errors.iter().collect();
    assert_no_secrets(&host, &refs, &[]);
}

#[test]
fn tls_is_verified() {
    let server = TestServer::https();
    let host = TestHost::default();
    let config = format!(
        r#"{{"access_key_id": "a", "access_key_secret": "b",
             "sls": {{"project": "tfo-proj", "endpoint": "{}"}}}}"#,
        server.url("")
    );
    let mut inst = create(&host, &config).unwrap();
    let e = export(&mut inst, &batch(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(server.requests().is_empty());
}
