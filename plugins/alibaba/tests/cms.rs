//! CloudMonitor PutCustomMetric through the plugin's exported entry points,
//! against a strict local HTTPS server: the form body is decoded by the test's
//! own decoder, the RPC signature is recomputed in Rust here (from the
//! documentation) and in Python (`tests/verify.py`), the common parameters are
//! checked (nonce unique per request, timestamp format, STS token), 21 metrics per
//! call; and the documented answers: Code "200", throttling (retryable), a
//! refused signature or parameter (permanent), 5xx and 429 + Retry-After.

mod common;

use std::collections::BTreeMap;

use common::*;
use hmac::Mac;
use serde_json::json;
use tfo_plugin_api::testing::export;
use tfo_plugin_api::{Batch, ErrorKind, KeyValue, Metric, Resource};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const T: u64 = 1_700_000_010_000_000_000;

fn config(server: &TestServer) -> String {
    format!(
        r#"{{{}, "labels": {{"env": "prod"}},
            "cms": {{"endpoint": "{}", "group_id": "42", "metric_prefix": "tfo_"}}}}"#,
        creds_json(server.ca_file()),
        server.url("")
    )
}

fn batch(n: usize) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("host.name", "web-1")].into(),
        },
        metrics: (0..n)
            .map(|i| {
                Metric::gauge(
                    &format!("m{i}"),
                    "1",
                    T,
                    i as f64 + 0.5,
                    vec![KeyValue::new("core", i as i64)],
                )
            })
            .collect::<Vec<_>>()
            .into(),
        ..Batch::default()
    }
}

fn ok() -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json")
        .body(r#"{"Code":"200","Message":"","RequestId":"6A5F022D-AC7C-460E-94AE-B9E75083D027"}"#)
}

/// Percent-encoding as documented (RFC 3986 unreserved kept), written here.
fn pe(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Checks the signature of a recorded call; returns its parameters.
fn check_signed(r: &RecordedRequest) -> BTreeMap<String, String> {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut params = form(&r.body);
    let sig = params.remove("Signature").expect("Signature");
    let canon: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", pe(k), pe(v)))
        .collect();
    let sts = format!("POST&%2F&{}", pe(&canon.join("&")));
    let mut mac =
        hmac::Hmac::<sha1::Sha1>::new_from_slice(format!("{SECRET}&").as_bytes()).unwrap();
    mac.update(sts.as_bytes());
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(sig, want);
    if let Some(out) = python(&json!({
        "cmd": "rpc", "method": "POST", "body": r.text(), "secret": SECRET,
    })) {
        assert_eq!(out["expected"], out["signature"], "{out}");
        assert_eq!(out["string_to_sign"], sts);
    }
    params
}

#[test]
fn put_custom_metric_signed_in_calls_of_21() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server)).unwrap_or_else(|e| panic!("{e:?}"));
    server.push_response(ok());
    server.push_response(ok());
    let done = export(&mut inst, &batch(23)).unwrap();
    assert_eq!(done.accepted, 23);
    let reqs = server.wait_for_requests(2, WAIT);
    let p1 = check_signed(&reqs[0]);
    let p2 = check_signed(&reqs[1]);
    for p in [&p1, &p2] {
        assert_eq!(p["Action"], "PutCustomMetric");
        assert_eq!(p["Version"], "2019-01-01");
        assert_eq!(p["Format"], "JSON");
        assert_eq!(p["AccessKeyId"], KEY_ID);
        assert_eq!(p["SignatureMethod"], "HMAC-SHA1");
        assert_eq!(p["SignatureVersion"], "1.0");
        assert_eq!(p["SecurityToken"], STS);
        let ts = &p["Timestamp"];
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
    }
    assert_ne!(p1["SignatureNonce"], p2["SignatureNonce"]);
    let metrics =
        |p: &BTreeMap<String, String>| p.keys().filter(|k| k.ends_with(".MetricName")).count();
    assert_eq!(metrics(&p1), 21);
    assert_eq!(metrics(&p2), 2);
    assert_eq!(p1["MetricList.1.MetricName"], "tfo_m0");
    assert_eq!(p1["MetricList.1.GroupId"], "42");
    assert_eq!(p1["MetricList.1.Type"], "0");
    assert_eq!(p1["MetricList.1.Time"], "1700000010000");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&p1["MetricList.1.Values"]).unwrap(),
        json!({"value": 0.5})
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&p1["MetricList.1.Dimensions"]).unwrap(),
        json!({"core": "0", "env": "prod", "host": "web-1"})
    );
    assert_eq!(p2["MetricList.2.MetricName"], "tfo_m22");
    assert_no_secrets(&host, &[], &[]);
}

#[test]
fn documented_answers() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server)).unwrap();
    let b = batch(1);
    let mut errors = Vec::new();

    // HTTP 200 but a refused call.
    server.push_response(
        ScriptedResponse::status(200)
            .body(r#"{"Code":"InvalidParameter","Message":"MetricName is invalid"}"#),
    );
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("InvalidParameter"), "{e}");
    errors.push(e);

    for (status, code, kind) in [
        (400, "Throttling.User", ErrorKind::Retryable),
        (400, "SignatureNonceUsed", ErrorKind::Retryable),
        (503, "ServiceUnavailable", ErrorKind::Retryable),
        (400, "SignatureDoesNotMatch", ErrorKind::Permanent),
        (404, "InvalidAccessKeyId.NotFound", ErrorKind::Permanent),
        (403, "Forbidden.RAM", ErrorKind::Permanent),
    ] {
        server.push_response(ScriptedResponse::status(status).body(format!(
            r#"{{"RequestId":"r","HostId":"metrics.cn-hangzhou.aliyuncs.com","Code":"{code}","Message":"m"}}"#
        )));
        let e = export(&mut inst, &b).unwrap_err();
        assert_eq!(e.kind, kind, "{code}: {e}");
        assert!(e.message.contains(code), "{e}");
        errors.push(e);
    }

    server.push_response(ScriptedResponse::status(429).header("Retry-After", "9"));
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(9000));
    errors.push(e);

    server.push_response(ok());
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 1);
    let refs: Vec<&_> = errors.iter().collect();
    assert_no_secrets(&host, &refs, &[]);
}
