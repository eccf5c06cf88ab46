//! The plugin, driven through its exported root module as the agent drives it,
//! against the strict local HTTPS server: the push request as Loki's HTTP API
//! describes it (method, path, `Content-Type`, `X-Scope-OrgID`, credentials), the
//! body decoded **independently of the plugin's code** — a Snappy block-format
//! decoder and a protobuf wire-format reader written in this file from the two
//! format descriptions and push.proto's field numbers, not the plugin's prost
//! structs, not the snap crate — and Loki's answers: 204, 429 with `Retry-After`,
//! 400 out-of-order / "entry too far behind" (dropped, counted, not retried), 500,
//! 401/403, TLS verification.

use std::time::Duration;

use tfo_plugin_api::{
    testing::TestHost, AnyValue, Batch, DataTypes, ErrorKind, HealthState, KeyValue, LogRecord,
    Metric, PluginError, PluginInstanceBox, Resource,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const WAIT: Duration = Duration::from_secs(10);
const T: u64 = 1_700_000_000_000_000_000;

/// Snappy block format and protobuf wire format, written from their
/// descriptions (google/snappy `format_description.txt`; protobuf "Encoding").
mod wire {
    fn varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos).ok_or("truncated varint")?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// Snappy block format: varint uncompressed length, then literals (tag 00)
    /// and copies with 1-, 2- or 4-byte offsets (tags 01, 10, 11).
    pub fn snappy_decode(src: &[u8]) -> Result<Vec<u8>, String> {
        let mut pos = 0;
        let len = varint(src, &mut pos)? as usize;
        let mut out: Vec<u8> = Vec::with_capacity(len);
        while pos < src.len() {
            let tag = src[pos];
            pos += 1;
            let (n, offset) = match tag & 3 {
                0 => {
                    let mut n = (tag >> 2) as usize;
                    if n >= 60 {
                        let extra = n - 59;
                        let bytes = src
                            .get(pos..pos + extra)
                            .ok_or("truncated literal length")?;
                        n = bytes
                            .iter()
                            .rev()
                            .fold(0usize, |acc, b| acc << 8 | *b as usize);
                        pos += extra;
                    }
                    let lit = src.get(pos..pos + n + 1).ok_or("truncated literal")?;
                    out.extend_from_slice(lit);
                    pos += n + 1;
                    continue;
                }
                1 => {
                    let b = *src.get(pos).ok_or("truncated copy")? as usize;
                    pos += 1;
                    (
                        4 + ((tag >> 2) & 7) as usize,
                        ((tag as usize >> 5) << 8) | b,
                    )
                }
                2 => {
                    let b = src.get(pos..pos + 2).ok_or("truncated copy")?;
                    pos += 2;
                    (
                        1 + (tag >> 2) as usize,
                        u16::from_le_bytes([b[0], b[1]]) as usize,
                    )
                }
                _ => {
                    let b = src.get(pos..pos + 4).ok_or("truncated copy")?;
                    pos += 4;
                    (
                        1 + (tag >> 2) as usize,
                        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                    )
                }
            };
            if offset == 0 || offset > out.len() {
                return Err(format!("bad copy offset {offset}"));
            }
            let start = out.len() - offset;
            for i in 0..n {
                let byte = out[start + i]; // copies may overlap their output
                out.push(byte);
            }
        }
        if out.len() != len {
            return Err(format!("decoded {} bytes, header says {len}", out.len()));
        }
        Ok(out)
    }

    /// A field's value: varint or length-delimited bytes.
    enum Val<'a> {
        Int(u64),
        Bytes(&'a [u8]),
    }

    fn fields(b: &[u8]) -> Result<Vec<(u64, Val<'_>)>, String> {
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < b.len() {
            let key = varint(b, &mut pos)?;
            let val = match key & 7 {
                0 => Val::Int(varint(b, &mut pos)?),
                2 => {
                    let n = varint(b, &mut pos)? as usize;
                    let v = b.get(pos..pos + n).ok_or("truncated bytes field")?;
                    pos += n;
                    Val::Bytes(v)
                }
                w => return Err(format!("unexpected wire type {w}")),
            };
            out.push((key >> 3, val));
        }
        Ok(out)
    }

    fn string(v: &[u8]) -> Result<String, String> {
        String::from_utf8(v.to_vec()).map_err(|e| e.to_string())
    }

    /// An entry as read off the wire.
    #[derive(Debug, Default, PartialEq)]
    pub struct WireEntry {
        pub seconds: u64,
        pub nanos: u64,
        pub line: String,
        pub metadata: Vec<(String, String)>,
    }

    /// A stream as read off the wire.
    #[derive(Debug, Default, PartialEq)]
    pub struct WireStream {
        pub labels: String,
        pub entries: Vec<WireEntry>,
        pub hash: u64,
    }

    /// push.proto: PushRequest{1: streams}; StreamAdapter{1: labels, 2: entries,
    /// 3: hash}; EntryAdapter{1: Timestamp{1: seconds, 2: nanos}, 2: line, 3:
    /// structuredMetadata{1: name, 2: value}}.
    pub fn decode_push(b: &[u8]) -> Result<Vec<WireStream>, String> {
        let mut streams = Vec::new();
        for (f, v) in fields(b)? {
            let (1, Val::Bytes(sb)) = (f, v) else {
                return Err(format!("unexpected PushRequest field {f}"));
            };
            let mut s = WireStream::default();
            for (f, v) in fields(sb)? {
                match (f, v) {
                    (1, Val::Bytes(x)) => s.labels = string(x)?,
                    (3, Val::Int(h)) => s.hash = h,
                    (2, Val::Bytes(eb)) => {
                        let mut e = WireEntry::default();
                        for (f, v) in fields(eb)? {
                            match (f, v) {
                                (1, Val::Bytes(tb)) => {
                                    for (f, v) in fields(tb)? {
                                        match (f, v) {
                                            (1, Val::Int(x)) => e.seconds = x,
                                            (2, Val::Int(x)) => e.nanos = x,
                                            _ => return Err("bad Timestamp".into()),
                                        }
                                    }
                                }
                                (2, Val::Bytes(x)) => e.line = string(x)?,
                                (3, Val::Bytes(mb)) => {
                                    let (mut k, mut val) = (String::new(), String::new());
                                    for (f, v) in fields(mb)? {
                                        match (f, v) {
                                            (1, Val::Bytes(x)) => k = string(x)?,
                                            (2, Val::Bytes(x)) => val = string(x)?,
                                            _ => return Err("bad LabelPairAdapter".into()),
                                        }
                                    }
                                    e.metadata.push((k, val));
                                }
                                _ => return Err(format!("unexpected EntryAdapter field {f}")),
                            }
                        }
                        s.entries.push(e);
                    }
                    _ => return Err(format!("unexpected StreamAdapter field {f}")),
                }
            }
            streams.push(s);
        }
        Ok(streams)
    }

    #[test]
    fn snappy_decoder_reads_the_format_descriptions_example_shapes() {
        // Length 12; literal of 4 (tag (4-1)<<2 | 00) "abcd"; copy with a 1-byte
        // offset (tag: offset high bits 000, length-4 = 4 -> 100, type 01 = 0x11;
        // offset byte 4), overlapping its own output: "abcdabcdabcd".
        let block = [12, 3 << 2, b'a', b'b', b'c', b'd', 0x11, 4];
        assert_eq!(snappy_decode(&block).unwrap(), b"abcdabcdabcd");
        assert!(snappy_decode(&[5, 0, b'a']).is_err());
    }
}

fn create(h: &TestHost, config: &str) -> Result<PluginInstanceBox, tfo_plugin_api::CreateError> {
    let module = tfo_plugin_api::plugin_module!(tfo_loki);
    tfo_plugin_api::testing::create(module, h, "loki", config)
}

fn started(h: &TestHost, config: &str) -> PluginInstanceBox {
    let module = tfo_plugin_api::plugin_module!(tfo_loki);
    tfo_plugin_api::testing::create_started(module, h, "loki", config)
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"endpoint": "{}", "ca_file": {:?}, "timeout": "5s" {extra}}}"#,
        server.url(""),
        server.ca_file().display().to_string(),
    )
}

fn export(inst: &mut PluginInstanceBox, b: &Batch) -> Result<u64, PluginError> {
    tfo_plugin_api::testing::export(inst, b).map(|ok| ok.accepted)
}

fn rec(time: u64, sev: u8, body: &str, attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: 0,
        severity_number: sev,
        severity_text: "".into(),
        body: AnyValue::Str(body.into()),
        attributes: attrs.into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn batch(logs: Vec<LogRecord>) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("host.name", "web-1"),
            ]
            .into(),
        },
        logs: logs.into(),
        ..Default::default()
    }
}

fn decode(req: &RecordedRequest) -> Vec<wire::WireStream> {
    assert_ne!(
        req.raw_body.first(),
        Some(&0xff),
        "framed snappy, want block"
    );
    let raw = wire::snappy_decode(&req.raw_body).expect("snappy block body");
    wire::decode_push(&raw).expect("PushRequest")
}

fn lines(req: &RecordedRequest) -> Vec<String> {
    decode(req)
        .into_iter()
        .flat_map(|s| s.entries.into_iter().map(|e| e.line))
        .collect()
}

fn no_content() -> ScriptedResponse {
    ScriptedResponse::status(204)
}

#[test]
fn protobuf_push_follows_the_api() {
    let server = TestServer::https();
    server.push_response(no_content());
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &config(
            &server,
            r#", "tenant_id": "team-a", "labels": {"job": "tfo-agent"},
               "basic_auth": {"username": "Aladdin", "password": "open sesame"}"#,
        ),
    );
    let mut traced = rec(
        T + 20,
        17,
        "charge failed",
        vec![KeyValue::new("order.id", 42i64)],
    );
    traced.trace_id = [0x11; 16];
    let mut b = batch(vec![
        traced,
        rec(T + 10, 9, "second", vec![]),
        rec(T + 5, 9, "first", vec![]),
    ]);
    b.metrics
        .push(Metric::gauge("ignored", "1", T, 1.0, vec![]));
    // Three log records accepted, and the metric not counted as a drop.
    assert_eq!(export(&mut inst, &b).unwrap(), 4);

    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.path, "/loki/api/v1/push");
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(req.header("content-encoding"), None);
    assert_eq!(req.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(
        req.header("authorization"),
        Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    );
    assert_eq!(
        req.header("user-agent"),
        Some(concat!("tfo-agent/", env!("CARGO_PKG_VERSION")))
    );
    let streams = decode(req);
    assert_eq!(streams.len(), 2);
    assert_eq!(
        streams[0].labels,
        r#"{host_name="web-1", job="tfo-agent", level="error", service_name="checkout"}"#
    );
    assert_eq!(
        streams[0].entries,
        [wire::WireEntry {
            seconds: 1_700_000_000,
            nanos: 20,
            line: "charge failed".into(),
            metadata: vec![
                ("order_id".into(), "42".into()),
                ("trace_id".into(), "11".repeat(16)),
            ],
        }]
    );
    assert_eq!(
        streams[1].labels,
        r#"{host_name="web-1", job="tfo-agent", level="info", service_name="checkout"}"#
    );
    // Sorted by time within the stream.
    let got: Vec<(u64, &str)> = streams[1]
        .entries
        .iter()
        .map(|e| (e.nanos, e.line.as_str()))
        .collect();
    assert_eq!(got, [(5, "first"), (10, "second")]);
    assert!(streams.iter().all(|s| s.hash == 0));
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn json_push_with_a_bearer_token() {
    let server = TestServer::https();
    server.push_response(no_content());
    let h = TestHost::default();
    let cfg = format!(
        r#"{{"endpoint": "{}", "ca_file": {:?}, "encoding": "json", "bearer_token": "glc_abc"}}"#,
        // The full push URL, as the Go agent's sample config wrote it: not doubled.
        server.url("/loki/api/v1/push"),
        server.ca_file().display().to_string(),
    );
    let mut inst = started(&h, &cfg);
    let mut r = rec(T, 13, "slow", vec![]);
    r.span_id = [0xab; 8];
    assert_eq!(export(&mut inst, &batch(vec![r])).unwrap(), 1);
    let req = &server.wait_for_requests(1, WAIT)[0];
    assert_eq!(req.path, "/loki/api/v1/push");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), Some("Bearer glc_abc"));
    assert_eq!(req.header("x-scope-orgid"), None);
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"streams": [{
            "stream": {"host_name": "web-1", "level": "warn", "service_name": "checkout"},
            "values": [["1700000000000000000", "slow", {"span_id": "abababababababab"}]]
        }]})
    );
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn rate_limited_429_is_retryable_with_the_servers_delay() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "7")
            .body("Ingestion rate limit exceeded for user team-a (limit: 4194304 bytes/sec) while attempting to ingest '3' lines totaling '1024' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"),
    );
    server.push_response(no_content());
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = batch(vec![rec(T, 9, "a", vec![]), rec(T + 1, 9, "b", vec![])]);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    assert!(
        e.message.contains("429") && e.message.contains("rate limit"),
        "{e}"
    );
    assert_eq!(inst.health().state, HealthState::Unhealthy);
    assert_eq!(export(&mut inst, &b).unwrap(), 2);
    let reqs = server.wait_for_requests(2, WAIT);
    assert_eq!(
        reqs[0].raw_body, reqs[1].raw_body,
        "the retry resends the same push"
    );
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn out_of_order_400_drops_those_entries_without_retrying() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(400).body(
        "entry with timestamp 2023-11-14 22:13:20 +0000 UTC ignored, reason: 'entry out of order' for stream: {host_name=\"web-1\", level=\"info\", service_name=\"checkout\"},\nuser 'fake', total ignored: 1 out of 2 for stream: {host_name=\"web-1\", level=\"info\", service_name=\"checkout\"}",
    ));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = batch(vec![rec(T, 9, "old", vec![]), rec(T + 1, 9, "new", vec![])]);
    // One of two refused for good: accepted 1, success, no retry.
    assert_eq!(export(&mut inst, &b).unwrap(), 1);
    assert_eq!(server.requests().len(), 1);
    let health = inst.health();
    assert_eq!(health.state, HealthState::Healthy);
    assert!(
        health.reason.contains("refused 1 entry") && health.reason.contains("entry out of order"),
        "{health:?}"
    );
    h.wait_for_log("Loki refused 1 entry for good (not retried)", WAIT);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn split_pushes_resume_after_a_500_and_a_400_does_not_stop_the_rest() {
    let server = TestServer::https();
    // 12 lines of ~330 bytes on the wire, 1024-byte pushes: two lines a push.
    let logs: Vec<LogRecord> = (0..12u64)
        .map(|i| rec(T + i, 9, &format!("{i:02}-{}", "x".repeat(290)), vec![]))
        .collect();
    let b = batch(logs);
    server.push_response(no_content());
    server.push_response(ScriptedResponse::status(400).body(
        "entry with timestamp 2023-11-14 22:13:20.000000003 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2023-11-14T22:13:20Z, oldest acceptable timestamp is: 2023-11-14T23:00:00Z',\nuser 'fake', total ignored: 2 out of 2 for stream: {host_name=\"web-1\", level=\"info\", service_name=\"checkout\"}",
    ));
    server.push_response(ScriptedResponse::status(500).body("internal server error"));
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &config(
            &server,
            r#", "max_request_bytes": 1024, "max_line_bytes": 400"#,
        ),
    );
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("500"), "{e}");
    let first = server.wait_for_requests(3, WAIT);
    let per_push: Vec<Vec<String>> = first.iter().map(lines).collect();
    let n0 = per_push[0].len() as u64;
    assert_eq!(n0, 2, "{per_push:?}");
    assert_eq!(per_push[1].len(), 2, "{per_push:?}");
    assert_eq!(
        e.accepted, n0,
        "the first push was ingested, the second refused"
    );
    // The host retries: the push that got 500 and the rest, not the first two.
    let accepted = export(&mut inst, &b).unwrap();
    assert_eq!(
        accepted,
        12 - 2,
        "the two entries refused with 400 are dropped"
    );
    let all = server.requests();
    assert_eq!(lines(&all[3]), per_push[2], "resumes at the failed push");
    let mut sent: Vec<String> = all[3..].iter().flat_map(lines).collect();
    sent.splice(
        0..0,
        per_push[0]
            .iter()
            .cloned()
            .chain(per_push[1].iter().cloned()),
    );
    let prefixes: Vec<String> = sent.iter().map(|l| l[..2].to_string()).collect();
    let want: Vec<String> = (0..12).map(|i| format!("{i:02}")).collect();
    assert_eq!(prefixes, want, "every line once, in time order");
    for r in &all {
        assert!(r.raw_body.len() <= 1024, "{}", r.raw_body.len());
    }
    assert!(inst.health().reason.contains("entry too far behind"));
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn server_errors_are_retryable_auth_errors_permanent() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(500).body("rpc error: code = Unavailable"));
    server.push_response(ScriptedResponse::status(401).body("no org id"));
    server.push_response(ScriptedResponse::status(403).body("forbidden"));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = batch(vec![rec(T, 9, "x", vec![])]);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(
        (e.kind, e.retry_after_ms.into_option()),
        (ErrorKind::Retryable, None)
    );
    for code in ["401", "403"] {
        let e = export(&mut inst, &batch(vec![rec(T, 9, code, vec![])])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        assert!(e.message.contains(code), "{e}");
    }
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn bad_data_does_not_poison_the_batch() {
    let server = TestServer::https();
    server.push_response(no_content());
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &config(
            &server,
            r#", "label_attributes": ["weird key!", "level"], "max_line_bytes": 1000"#,
        ),
    );
    let b = batch(vec![
        rec(
            T,
            9,
            &"y".repeat(5000),
            vec![KeyValue::new("weird key!", "v\"1")],
        ),
        rec(T + 1, 9, "ok", vec![KeyValue::new("nan", f64::NAN)]),
    ]);
    assert_eq!(export(&mut inst, &b).unwrap(), 2);
    let streams = decode(&server.wait_for_requests(1, WAIT)[0]);
    assert_eq!(streams.len(), 2);
    let weird = streams
        .iter()
        .find(|s| s.labels.contains("weird_key_"))
        .unwrap();
    assert_eq!(weird.labels, r#"{level="info", weird_key_="v\"1"}"#);
    assert_eq!(weird.entries[0].line.len(), 1000);
    let ok = streams
        .iter()
        .find(|s| s.labels == r#"{level="info"}"#)
        .unwrap();
    assert_eq!(ok.entries[0].line, "ok");
    assert!(ok.entries[0]
        .metadata
        .contains(&("nan".to_string(), "NaN".to_string())));
    h.wait_for_log("1 line(s) cut to max_line_bytes", WAIT);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn only_logs_are_declared_and_sent() {
    let module = tfo_plugin_api::plugin_module!(tfo_loki);
    let d = (module.descriptor())();
    assert_eq!(d.data_types, DataTypes::LOGS);
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = Batch {
        metrics: vec![Metric::gauge("m", "1", T, 1.0, vec![])].into(),
        ..Default::default()
    };
    assert_eq!(export(&mut inst, &b).unwrap(), 1);
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = started(&h, &format!(r#"{{"endpoint": "{}"}}"#, server.url("")));
    let e = export(&mut inst, &batch(vec![rec(T, 9, "x", vec![])])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("certificate"), "{e}");
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn config_errors_carry_their_paths() {
    let h = TestHost::default();
    let e = create(
        &h,
        r#"{"endpoint": "loki:3100", "labels": {"bad-name": "x"}}"#,
    )
    .err()
    .expect("refused");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["endpoint", "labels.bad-name"]);
    let e = create(&h, r#"{"endpoint": "http://x", "batch_wait": "1s"}"#)
        .err()
        .expect("refused");
    assert!(
        e.config_errors[0].message.contains("unknown field"),
        "{e:?}"
    );
}
