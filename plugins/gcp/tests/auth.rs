//! Authentication, driven through the plugin's exported entry points against strict
//! local HTTPS servers standing in for Google's OAuth token endpoint and the APIs
//! (and a plain HTTP one for the metadata server, which is plain HTTP on GCE):
//! - the service-account flow: the token request is the documented form POST, the
//!   JWT assertion's RS256 signature verifies with the key's public key (ring, key
//!   made by openssl) and its claims are the documented ones; the token is cached and
//!   used by all three APIs;
//! - a short-lived token is replaced before it expires;
//! - a 401 leads to one refresh and one retry, and a second 401 to a permanent
//!   error; a static token's 401 is permanent at once;
//! - the metadata server flow (explicit and default);
//! - token endpoint errors: 400 `invalid_grant` permanent with its description,
//!   503 retryable with Retry-After;
//! - the JWT checked by independent implementations: PyPI `cryptography` verifies the
//!   signature with a key it generated itself, and `google-auth`'s JWT verifier
//!   checks signature, audience and times, and its own service-account credentials
//!   build an assertion with the same header and claim names;
//! - secrets (private key, assertions, tokens) never appear in logs, errors, health
//!   or previews.

mod common;

use common::*;
use serde_json::{json, Value};
use tfo_plugin_api::testing::export;
use tfo_plugin_api::{ErrorKind, HealthState};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

/// One CA file trusting every given HTTPS server.
fn ca_bundle(dir: &std::path::Path, servers: &[&TestServer]) -> std::path::PathBuf {
    let pem: String = servers.iter().map(|s| s.ca_pem().to_string()).collect();
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

struct Setup {
    _dir: tempfile::TempDir,
    token: TestServer,
    api: TestServer,
    config: Value,
    token_uri: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token = TestServer::https();
    let api = TestServer::https();
    let token_uri = token.url("/token");
    let key = key_file(dir.path(), &token_uri, TEST_KEY_PEM);
    let ca = ca_bundle(dir.path(), &[&token, &api]);
    let config = sa_config(&key, &api, &ca);
    Setup {
        _dir: dir,
        token,
        api,
        config,
        token_uri,
    }
}

#[test]
fn service_account_token_is_fetched_once_and_used_by_all_three_apis() {
    let s = setup();
    s.token
        .push_response(token_response("ya29.first-token", 3600));
    let host = TestHost::default();
    let mut inst = instance(&host, &s.config);
    assert!(
        s.token.requests().is_empty(),
        "create must not fetch a token"
    );

    let ok = export(&mut inst, &sample_batch()).expect("export");
    assert_eq!(ok.accepted, 4);

    let treqs = s.token.requests();
    assert_eq!(treqs.len(), 1);
    assert_eq!(treqs[0].path, "/token");
    let (header, claims, _) = check_token_request(&treqs[0], TEST_PUBLIC_DER);
    check_claims(&header, &claims, &s.token_uri);

    let reqs = s.api.wait_for_requests(3, WAIT);
    check_api_request(
        &reqs[0],
        "/v3/projects/my-proj/timeSeries",
        "ya29.first-token",
    );
    check_api_request(&reqs[1], "/v2/entries:write", "ya29.first-token");
    check_api_request(
        &reqs[2],
        "/v2/projects/my-proj/traces:batchWrite",
        "ya29.first-token",
    );
    // The project came from the key file.
    assert_eq!(
        body(&reqs[0])["timeSeries"][0]["resource"]["labels"]["project_id"],
        "my-proj"
    );

    // Cached: a second export fetches no token.
    export(&mut inst, &sample_batch()).expect("second export");
    assert_eq!(s.token.requests().len(), 1);
    let reqs = s.api.wait_for_requests(6, WAIT);
    for r in &reqs[3..] {
        assert_eq!(r.header("authorization"), Some("Bearer ya29.first-token"));
    }
    assert_eq!(inst.health().state, HealthState::Healthy);
}

#[test]
fn a_short_lived_token_is_replaced_before_it_expires() {
    let s = setup();
    // 10 s is inside the 5-minute refresh margin: stale at once.
    s.token.push_response(token_response("tok-1", 10));
    s.token.push_response(token_response("tok-2", 3600));
    let host = TestHost::default();
    let mut inst = instance(&host, &s.config);
    let batch = metrics_batch(1);
    export(&mut inst, &batch).unwrap();
    export(&mut inst, &batch).unwrap();
    export(&mut inst, &batch).unwrap();
    let treqs = s.token.requests();
    assert_eq!(
        treqs.len(),
        2,
        "one refresh, then the long-lived token is kept"
    );
    // Each fetch signs a fresh, valid assertion.
    for r in &treqs {
        let (h, c, _) = check_token_request(r, TEST_PUBLIC_DER);
        check_claims(&h, &c, &s.token_uri);
    }
    let auth: Vec<String> = s
        .api
        .wait_for_requests(3, WAIT)
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]);
}

#[test]
fn a_401_refreshes_the_token_once_then_fails_permanently() {
    let s = setup();
    for t in ["tok-1", "tok-2", "tok-3"] {
        s.token.push_response(token_response(t, 3600));
    }
    let unauth = || {
        google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        )
        .header(
            "WWW-Authenticate",
            "Bearer realm=\"https://accounts.google.com/\"",
        )
    };
    let host = TestHost::default();
    let mut inst = instance(&host, &s.config);
    let batch = metrics_batch(2);

    // 401 then 200: one refresh, one retry, success.
    s.api.push_response(unauth());
    let ok = export(&mut inst, &batch).expect("the retry with a new token succeeds");
    assert_eq!(ok.accepted, 2);
    let reqs = s.api.wait_for_requests(2, WAIT);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(reqs[0].body, reqs[1].body, "the same request is retried");
    assert_eq!(s.token.requests().len(), 2);

    // 401 twice: permanent after exactly one refresh and one retry.
    s.api.push_response(unauth());
    s.api.push_response(unauth());
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("freshly obtained token"), "{e}");
    assert!(e.message.contains("UNAUTHENTICATED"), "{e}");
    assert_eq!(e.accepted, 0);
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 4, "no third attempt");
    assert_eq!(reqs[2].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(reqs[3].header("authorization"), Some("Bearer tok-3"));
    assert_eq!(s.token.requests().len(), 3);
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("UNAUTHENTICATED"), "{:?}", h.reason);

    // Once the API accepts again, the instance is healthy again.
    export(&mut inst, &batch).expect("accepted again");
    assert_ne!(inst.health().state, HealthState::Unhealthy);
}

#[test]
fn metadata_server_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let meta = TestServer::http();
    let api = TestServer::https();
    let ca = ca_bundle(dir.path(), &[&api]);
    let base = json!({
        "project_id": PROJECT,
        "metadata_url": meta.url(""),
        "monitoring": {"endpoint": api.url("/v3")},
        "ca_file": ca,
    });
    let mut explicit = base.clone();
    explicit["use_metadata_server"] = true.into();
    meta.push_response(token_response("meta-token-1", 3599));
    meta.push_response(token_response("meta-token-2", 3599));
    for (i, config) in [explicit, base].iter().enumerate() {
        let host = TestHost::default();
        let mut inst = instance(&host, config);
        export(&mut inst, &metrics_batch(1)).unwrap();
        let mreqs = meta.wait_for_requests(i + 1, WAIT);
        let r = &mreqs[i];
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.path,
            "/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(r.header("metadata-flavor"), Some("Google"));
        assert!(r.header("authorization").is_none());
        let reqs = api.wait_for_requests(i + 1, WAIT);
        check_api_request(
            &reqs[i],
            "/v3/projects/my-proj/timeSeries",
            &format!("meta-token-{}", i + 1),
        );
    }
    // Not on GCE: the metadata server's 404 is permanent and explained.
    meta.push_response(ScriptedResponse::status(404).body("Not Found"));
    let host = TestHost::default();
    let mut cfg = json!({"project_id": PROJECT, "metadata_url": meta.url(""),
        "monitoring": {"endpoint": api.url("/v3")}, "ca_file": dir.path().join("ca.pem")});
    cfg["use_metadata_server"] = true.into();
    let mut inst = instance(&host, &cfg);
    let e = export(&mut inst, &metrics_batch(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("metadata server"), "{e}");
    assert!(e.message.contains("404"), "{e}");
    assert_eq!(api.requests().len(), 2, "no API request without a token");
}

#[test]
fn a_static_token_is_used_as_is_and_its_401_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::https();
    let ca = ca_bundle(dir.path(), &[&api]);
    let config = json!({
        "project_id": PROJECT,
        "access_token": "ya29.static",
        "monitoring": {"endpoint": api.url("/v3")},
        "ca_file": ca,
    });
    let host = TestHost::default();
    let mut inst = instance(&host, &config);
    export(&mut inst, &metrics_batch(1)).unwrap();
    api.push_response(google_error(401, "UNAUTHENTICATED", "expired"));
    let e = export(&mut inst, &metrics_batch(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("access_token was refused"), "{e}");
    let reqs = api.requests();
    assert_eq!(
        reqs.len(),
        2,
        "no retry: a static token cannot be refreshed"
    );
    for r in &reqs {
        assert_eq!(r.header("authorization"), Some("Bearer ya29.static"));
    }
}

#[test]
fn token_endpoint_errors() {
    let s = setup();
    let host = TestHost::default();
    let mut inst = instance(&host, &s.config);

    s.token.push_response(
        ScriptedResponse::status(400)
            .header("Content-Type", "application/json")
            .body(r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#),
    );
    let e = export(&mut inst, &sample_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(
        e.message.contains("invalid_grant: Invalid JWT Signature."),
        "{e}"
    );
    assert!(
        s.api.requests().is_empty(),
        "nothing is sent without a token"
    );
    assert_eq!(
        s.token.requests().len(),
        1,
        "a refused key stops the batch: one token request, not one per API"
    );
    assert_eq!(inst.health().state, HealthState::Unhealthy);

    s.token
        .push_response(google_error(503, "UNAVAILABLE", "try later").header("Retry-After", "3"));
    let e = export(&mut inst, &sample_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));

    // A 200 that is not token JSON (a proxy's page): retryable, body not quoted.
    s.token
        .push_response(ScriptedResponse::status(200).body("<html>captive portal</html>"));
    let e = export(&mut inst, &sample_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("not JSON"), "{e}");
    // A token type other than Bearer cannot be used.
    s.token.push_response(
        ScriptedResponse::status(200)
            .body(r#"{"access_token": "x", "token_type": "MAC", "expires_in": 3600}"#),
    );
    let e = export(&mut inst, &sample_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("MAC"), "{e}");

    // expires_in as a string is accepted too; lowercase "bearer" as well.
    s.token.push_response(
        ScriptedResponse::status(200)
            .body(r#"{"access_token": "tok", "token_type": "bearer", "expires_in": "3600"}"#),
    );
    export(&mut inst, &sample_batch()).expect("works once the endpoint does");
    export(&mut inst, &sample_batch()).expect("and the token is cached");
    assert_eq!(s.token.requests().len(), 5);
    assert_eq!(inst.health().state, HealthState::Healthy);
}

#[test]
fn secrets_never_appear_in_logs_errors_health_or_previews() {
    let s = setup();
    let tokens = ["ya29.SECRET-ONE", "ya29.SECRET-TWO", "ya29.SECRET-THREE"];
    for t in tokens {
        s.token.push_response(token_response(t, 3600));
    }
    let host = TestHost::default();
    let mut inst = instance(&host, &s.config);
    let batch = sample_batch();
    let mut texts = Vec::new();
    export(&mut inst, &batch).unwrap();
    // A 401 (refresh), then a 401 twice (permanent), a 400 and a 503.
    s.api
        .push_response(google_error(401, "UNAUTHENTICATED", "expired"));
    export(&mut inst, &metrics_batch(1)).unwrap();
    s.api
        .push_response(google_error(401, "UNAUTHENTICATED", "no"));
    s.api
        .push_response(google_error(401, "UNAUTHENTICATED", "no"));
    texts.push(
        export(&mut inst, &metrics_batch(1))
            .unwrap_err()
            .message
            .to_string(),
    );
    texts.push(inst.health().reason.to_string());
    s.api
        .push_response(google_error(400, "INVALID_ARGUMENT", "bad"));
    texts.push(
        export(&mut inst, &metrics_batch(1))
            .unwrap_err()
            .message
            .to_string(),
    );
    s.api.push_response(ScriptedResponse::status(503));
    texts.push(
        export(&mut inst, &metrics_batch(1))
            .unwrap_err()
            .message
            .to_string(),
    );
    match inst.preview(&batch) {
        tfo_plugin_api::__private::abi_stable::std_types::RResult::ROk(p) => {
            assert!(p.contains("/v2/entries:write"), "{p}");
            texts.push(p.to_string())
        }
        tfo_plugin_api::__private::abi_stable::std_types::RResult::RErr(e) => panic!("{e}"),
    }
    let logs = host.logs();
    assert!(
        logs.iter().any(|(_, l)| l.contains("answered 401")),
        "the plugin did log (at all levels): {logs:?}"
    );
    texts.extend(logs.into_iter().map(|(_, l)| l));

    let assertions: Vec<String> = s
        .token
        .requests()
        .iter()
        .map(|r| check_token_request(r, TEST_PUBLIC_DER).2)
        .collect();
    assert_eq!(assertions.len(), 3);
    let key_lines: Vec<&str> = TEST_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for text in &texts {
        for t in tokens {
            assert!(!text.contains(t), "token leaked in {text:?}");
        }
        for a in &assertions {
            // The signature part alone is enough to be a leak.
            let sig = a.rsplit('.').next().unwrap();
            assert!(!text.contains(sig), "assertion leaked in {text:?}");
        }
        for l in &key_lines {
            assert!(!text.contains(l), "private key leaked in {text:?}");
        }
        assert!(!text.contains("PRIVATE KEY"), "{text:?}");
    }

    // A bad key file is reported without quoting it.
    let dir = tempfile::tempdir().unwrap();
    let mangled = TEST_KEY_PEM.replacen(key_lines[3], "AAAA", 1);
    let key = key_file(dir.path(), &s.token_uri, &mangled);
    let mut config = s.config.clone();
    config["credentials_file"] = key.to_str().unwrap().into();
    let e = create(&host, &config)
        .err()
        .expect("a mangled key is refused");
    let text = format!("{e:?}");
    assert!(text.contains("credentials_file"), "{text}");
    for l in &key_lines {
        assert!(!text.contains(l), "private key leaked in {text:?}");
    }
}

#[test]
fn independent_jwt_verification_with_cryptography_and_google_auth() {
    if !python_has(
        "cryptography, google.auth.jwt, google.oauth2.service_account",
        "independent JWT verification",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().to_str().unwrap();
    // A key the plugin has never seen, generated by `cryptography`.
    run_python("jwt_check.py", &["genkey", keys], b"");
    let pem = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let token = TestServer::https();
    let api = TestServer::https();
    let token_uri = token.url("/token");
    let key = key_file(dir.path(), &token_uri, &pem);
    let ca = ca_bundle(dir.path(), &[&token, &api]);
    token.push_response(token_response("tok", 3600));
    let host = TestHost::default();
    let mut inst = instance(&host, &sa_config(&key, &api, &ca));
    export(&mut inst, &metrics_batch(1)).unwrap();

    let treq = &token.wait_for_requests(1, WAIT)[0];
    let fields = form(&treq.text());
    let jwt = &fields.iter().find(|(k, _)| k == "assertion").unwrap().1;
    let out = run_python(
        "jwt_check.py",
        &[
            "verify",
            dir.path().join("pub.pem").to_str().unwrap(),
            &token_uri,
            key.to_str().unwrap(),
        ],
        jwt.as_bytes(),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cryptography_signature"], "valid");
    assert_eq!(v["google_auth_decode"], "valid");
    check_claims(&v["header"], &v["claims"], &token_uri);
    // google-auth's own service-account assertion has the same header fields and
    // claim names.
    let mut ours: Vec<String> = v["claims"].as_object().unwrap().keys().cloned().collect();
    let mut theirs: Vec<String> = v["google_auth_claims"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert_eq!(v["google_auth_header"], v["header"]);
    // google-auth always uses Google's endpoint as the audience; the plugin, like
    // Go's golang.org/x/oauth2/google, uses the key file's token_uri (the same URL in
    // every real key file; here it points at the local stand-in).
    assert_eq!(
        v["google_auth_claims"]["aud"],
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(v["google_auth_claims"]["iss"], v["claims"]["iss"]);
    assert_eq!(v["google_auth_claims"]["scope"], v["claims"]["scope"]);
    // A signature made with another key must not verify: the check can fail.
    let other = tempfile::tempdir().unwrap();
    run_python(
        "jwt_check.py",
        &["genkey", other.path().to_str().unwrap()],
        b"",
    );
    let out = run_python(
        "jwt_check.py",
        &[
            "verify",
            other.path().join("pub.pem").to_str().unwrap(),
            &token_uri,
            key.to_str().unwrap(),
        ],
        jwt.as_bytes(),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cryptography_signature"], "invalid");
    assert_eq!(v["google_auth_decode"], "invalid");
}
