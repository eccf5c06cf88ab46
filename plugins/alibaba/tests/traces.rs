//! Traces to Managed Service for OpenTelemetry (OTLP/HTTP protobuf) through the
//! plugin's exported entry points, against a strict local HTTPS server: the body
//! is decoded with the opentelemetry-proto messages, the token-bearing path and
//! the `Authentication` header are checked, errors are classified, and the
//! endpoint (which embeds the token) never appears in an error or a log line.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tfo_plugin_api::testing::export;
use tfo_plugin_api::{Batch, ErrorKind, KeyValue, Resource, Span, SpanKind, StatusCode};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

const URL_TOKEN: &str = "adapt_b590lhguqs@3a7abc_b590lhguqs@53d8301";
const HEADER_TOKEN: &str = "hdr-token-7f3a";

fn batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("service.name", "shop")].into(),
        },
        spans: vec![Span {
            trace_id: [0x3c; 16],
            span_id: [0x01; 8],
            parent_span_id: [0; 8],
            name: "GET /cart".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            status_code: StatusCode::Ok,
            status_message: "".into(),
            attributes: vec![KeyValue::new("http.request.method", "GET")].into(),
            events: vec![].into(),
        }]
        .into(),
        ..Batch::default()
    }
}

fn config(endpoint: &str, ca: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{"arms": {{"endpoint": "{endpoint}"{extra}}}, "ca_file": {}, "timeout": "5s"}}"#,
        serde_json::to_string(ca).unwrap()
    )
}

#[test]
fn spans_go_out_as_otlp_protobuf() {
    let server = TestServer::https();
    let host = TestHost::default();
    let endpoint = server.url(&format!("/{URL_TOKEN}/api/otlp/traces"));
    let extra = format!(r#", "token": "{HEADER_TOKEN}", "compression": "gzip""#);
    let mut inst = create(&host, &config(&endpoint, server.ca_file(), &extra)).unwrap();
    assert_eq!(export(&mut inst, &batch()).unwrap().accepted, 1);
    let r = &server.wait_for_requests(1, WAIT)[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/{URL_TOKEN}/api/otlp/traces"));
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("authentication"), Some(HEADER_TOKEN));
    let req = ExportTraceServiceRequest::decode(&r.body[..]).unwrap();
    let rs = &req.resource_spans[0];
    let svc = &rs.resource.as_ref().unwrap().attributes[0];
    assert_eq!(svc.key, "service.name");
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.name, "GET /cart");
    assert_eq!(span.trace_id, vec![0x3c; 16]);
    assert_eq!(span.span_id, vec![0x01; 8]);
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        500_000_000
    );
}

#[test]
fn errors_are_classified_and_the_token_never_leaks() {
    let server = TestServer::https();
    let host = TestHost::default();
    let endpoint = server.url(&format!("/{URL_TOKEN}/api/otlp/traces"));
    let extra = format!(r#", "token": "{HEADER_TOKEN}""#);
    let mut inst = create(&host, &config(&endpoint, server.ca_file(), &extra)).unwrap();
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "2"));
    let e1 = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e1.kind, ErrorKind::Retryable);
    assert_eq!(e1.retry_after_ms.into_option(), Some(2000));
    server.push_response(ScriptedResponse::status(400).body("bad span"));
    let e2 = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e2.kind, ErrorKind::Permanent);

    // A closed port: the transport error names the host, not the token path.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("https://127.0.0.1:{port}/{URL_TOKEN}/api/otlp/traces");
    let mut inst = create(&host, &config(&endpoint, server.ca_file(), &extra)).unwrap();
    let e3 = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e3.kind, ErrorKind::Retryable);
    assert!(
        e3.message.contains(&format!("127.0.0.1:{port}/<redacted>")),
        "{e3}"
    );
    assert_no_secrets(&host, &[&e1, &e2, &e3], &[URL_TOKEN, HEADER_TOKEN]);

    // A bad endpoint is a config error that does not quote it.
    let e = create(
        &host,
        &config(&format!("ftp://h/{URL_TOKEN}"), server.ca_file(), ""),
    )
    .err()
    .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "arms.endpoint");
    assert!(!e.config_errors[0].message.contains(URL_TOKEN));
}
