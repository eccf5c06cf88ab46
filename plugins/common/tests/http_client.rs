//! The shared HTTP client against the strict local test server: TLS verification is
//! really on, gzip bodies arrive decodable, the timeout covers a server that never
//! answers, and `retry::classify` honours what the server says.

use std::time::Duration;

use http::{Method, Version};
use tfo_plugin_api::ErrorKind;
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Request},
    retry,
    testing::{ScriptedResponse, TestServer},
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn client(opts: ClientOptions) -> HttpClient {
    HttpClient::new(&opts).expect("client")
}

fn trusting(server: &TestServer) -> HttpClient {
    client(ClientOptions {
        ca_file: Some(server.ca_file().to_path_buf()),
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
}

#[test]
fn tls_verification_is_on_by_default() {
    let rt = runtime();
    let server = TestServer::https();

    // Without the test CA the handshake must fail: the certificate is not trusted.
    let plain = client(ClientOptions::default());
    let err = rt
        .block_on(plain.send(Request::new(Method::GET, server.url("/x"))))
        .unwrap_err();
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "unexpected error: {err}"
    );
    let e = retry::transport(err);
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(server.requests().is_empty(), "no request may get through");

    // With it, by IP and by host name (both are in the certificate).
    let c = trusting(&server);
    for url in [server.url("/by-ip?q=1"), server.url_localhost("/by-name")] {
        let resp = rt.block_on(c.send(Request::new(Method::GET, url))).unwrap();
        assert_eq!(resp.status, 200);
        assert!(retry::classify(&resp).is_ok());
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/by-ip?q=1");
    assert_eq!(reqs[1].path, "/by-name");
    // h2 is negotiated with ALPN over TLS.
    assert_eq!(reqs[0].version, Version::HTTP_2);
}

#[test]
fn insecure_skip_verify_accepts_an_untrusted_certificate() {
    let rt = runtime();
    let server = TestServer::https();
    let c = client(ClientOptions {
        insecure_skip_verify: true,
        ..Default::default()
    });
    let resp = rt
        .block_on(c.send(Request::new(Method::GET, server.url("/"))))
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[test]
fn a_ca_that_did_not_sign_the_server_is_not_enough() {
    let rt = runtime();
    let server = TestServer::https();
    let other = TestServer::https();
    let c = trusting(&other);
    let err = rt
        .block_on(c.send(Request::new(Method::GET, server.url("/"))))
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn gzip_body_round_trip_and_headers() {
    let rt = runtime();
    let server = TestServer::https();
    let c = trusting(&server);
    let body = b"{\"metric\":\"cpu\",\"value\":1}\n".repeat(50);
    let resp = rt
        .block_on(
            c.send(
                Request::new(Method::POST, server.url("/ingest"))
                    .header("Content-Type", "application/json")
                    .header("X-Api-Key", "secret")
                    .body(body.clone())
                    .gzip(true),
            ),
        )
        .unwrap();
    assert_eq!(resp.status, 200);
    let req = &server.wait_for_requests(1, Duration::from_secs(5))[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/ingest");
    assert_eq!(req.header("content-encoding"), Some("gzip"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-api-key"), Some("secret"));
    assert_eq!(
        req.header("user-agent"),
        Some(tfo_plugin_common::USER_AGENT)
    );
    assert!(req.decode_error.is_none());
    assert_eq!(req.body, body, "decompressed body differs");
    assert!(req.raw_body.len() < body.len(), "body was not compressed");
    assert_eq!(&req.raw_body[..2], &[0x1f, 0x8b], "not a gzip member");
}

#[test]
fn the_server_rejects_a_body_that_is_not_gzip() {
    let rt = runtime();
    let server = TestServer::http();
    let c = client(ClientOptions::default());
    let resp = rt
        .block_on(
            c.send(
                Request::new(Method::POST, server.url("/"))
                    .header("Content-Encoding", "gzip")
                    .body(b"plain text".to_vec()),
            ),
        )
        .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(
        retry::classify(&resp).unwrap_err().kind,
        ErrorKind::Permanent
    );
    assert!(server.requests()[0].decode_error.is_some());
}

#[test]
fn scripted_errors_are_classified_with_retry_after() {
    let rt = runtime();
    let server = TestServer::http();
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "3")
            .body("slow down"),
    );
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
    server.push_response(ScriptedResponse::status(503).header("Retry-After", &date));
    server.push_response(ScriptedResponse::status(400).body("bad sample"));
    server.push_response(ScriptedResponse::status(500));
    let c = client(ClientOptions::default());
    let mut results = Vec::new();
    for _ in 0..5 {
        let resp = rt
            .block_on(c.send(Request::new(Method::POST, server.url("/w")).body("x")))
            .unwrap();
        results.push(retry::classify(&resp));
    }
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));
    assert!(
        e.message.contains("429") && e.message.contains("slow down"),
        "{e}"
    );

    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    let ms = e.retry_after_ms.into_option().unwrap();
    assert!((115_000..=120_000).contains(&ms), "{ms}");

    let e = results[2].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("bad sample"), "{e}");

    let e = results[3].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), None);

    // The script is used up: the default answer is 200.
    assert!(results[4].is_ok());
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn the_timeout_covers_a_server_that_never_answers() {
    let rt = runtime();
    // Accepts connections (the kernel completes the handshake) but never reads
    // or writes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let c = client(ClientOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let err = rt
        .block_on(c.send(Request::new(Method::GET, url)))
        .unwrap_err();
    let took = started.elapsed();
    assert!(err.contains("timed out"), "{err}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn usable_from_a_spawned_task() {
    let rt = runtime();
    let server = TestServer::http();
    let c = client(ClientOptions::default());
    let url = server.url("/spawned");
    let status = rt
        .block_on(rt.spawn(async move { c.send(Request::new(Method::GET, url)).await }))
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, 200);
}
