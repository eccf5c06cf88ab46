//! `tfo_plugin_common::azure_auth::TokenSource` on its own (shared with azure-arc): per-audience caching, refresh before expiry with fallback to a
//! still-valid token when the refresh fails, and concurrent callers sharing one
//! fetch. A strict local HTTPS server stands in for Microsoft Entra ID.

mod common;

use std::time::Duration;

use common::*;
use tfo_plugin_api::ErrorKind;
use tfo_plugin_common::{
    azure_auth::{Credential, Endpoints, Secret, TokenSource},
    http::{ClientOptions, HttpClient},
    testing::{ScriptedResponse, TestServer},
};

fn source(login: &TestServer) -> TokenSource {
    let http = HttpClient::new(&ClientOptions {
        ca_file: Some(login.ca_file().to_path_buf()),
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
    .unwrap();
    TokenSource::new(
        Credential::ClientSecret {
            tenant_id: "tenant-1".into(),
            client_id: "app-1".into(),
            client_secret: Secret::new(SECRET),
        },
        Endpoints {
            authority_host: login.url("/"),
            imds_endpoint: "http://127.0.0.1:9".into(),
        },
        http,
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn one_token_per_audience() {
    let login = TestServer::https();
    let ts = source(&login);
    login.push_response(token("tok-a", 3600));
    login.push_response(token("tok-b", 3600));
    let rt = rt();
    rt.block_on(async {
        assert_eq!(
            ts.token("https://a.example/").await.unwrap().expose(),
            "tok-a"
        );
        assert_eq!(
            ts.token("https://b.example").await.unwrap().expose(),
            "tok-b"
        );
        assert_eq!(
            ts.token("https://a.example/").await.unwrap().expose(),
            "tok-a"
        );
        assert_eq!(
            ts.token("https://b.example").await.unwrap().expose(),
            "tok-b"
        );
    });
    let reqs = login.requests();
    assert_eq!(reqs.len(), 2);
    check_token_request(&reqs[0], "https://a.example//.default");
    check_token_request(&reqs[1], "https://b.example/.default");
    assert_eq!(ts.fetch_count(), 2);
}

#[test]
fn a_failed_refresh_keeps_the_still_valid_token() {
    let login = TestServer::https();
    // Refresh at once, although the token is valid for an hour.
    let ts = source(&login).with_refresh_margin(Duration::from_secs(3600));
    login.push_response(token("tok-1", 3600));
    login.push_response(ScriptedResponse::status(503));
    login.push_response(token("tok-2", 3600));
    let rt = rt();
    rt.block_on(async {
        assert_eq!(ts.token("aud").await.unwrap().expose(), "tok-1");
        // The refresh gets a 503: the old token is still good.
        assert_eq!(ts.token("aud").await.unwrap().expose(), "tok-1");
        assert_eq!(ts.token("aud").await.unwrap().expose(), "tok-2");
        // Invalidated (a 401 from an API): the next call fetches.
        ts.invalidate("aud").await;
        login.push_response(ScriptedResponse::status(503));
        let e = ts.token("aud").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable);
    });
    assert_eq!(login.requests().len(), 4);
}

#[test]
fn concurrent_callers_share_one_fetch() {
    let login = TestServer::https();
    let ts = std::sync::Arc::new(source(&login));
    login.push_response(token("tok-shared", 3600));
    let rt = rt();
    let got = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let ts = ts.clone();
                tokio::spawn(async move { ts.token("aud").await.unwrap().expose().to_string() })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(got.iter().all(|t| t == "tok-shared"));
    assert_eq!(login.requests().len(), 1);
}

#[test]
fn malformed_token_answers_are_errors_not_panics() {
    let login = TestServer::https();
    let ts = source(&login);
    let rt = rt();
    for body in [
        "",
        "{",
        r#"{"access_token": ""}"#,
        r#"{"token_type":"Bearer"}"#,
        "[1,2]",
    ] {
        login.push_response(ScriptedResponse::status(200).body(body));
        let e = rt.block_on(ts.token("aud")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent, "{body:?}: {e}");
    }
    // A token without expires_in is used but refreshed soon (assumed 5 minutes).
    login.push_response(ScriptedResponse::status(200).body(r#"{"access_token":"t"}"#));
    assert_eq!(rt.block_on(ts.token("aud")).unwrap().expose(), "t");
}
