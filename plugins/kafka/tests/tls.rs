//! TLS settings reach librdkafka: the CA file is loaded when the producer is
//! created in `start` (a file that is not a certificate makes `start` fail with
//! librdkafka's reason), and the client then speaks TLS: against the plaintext mock
//! cluster the handshake fails, which is retryable and shows in health. (No Kafka
//! broker with TLS listeners is packaged in Debian; the mock cluster has none.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tfo_plugin_api::{__private::abi_stable::std_types::RResult, ErrorKind, HealthState};

#[test]
fn the_ca_file_is_loaded_at_start_and_the_client_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let bad_path = dir.path().join("bad.pem");
    std::fs::write(&bad_path, "not a certificate\n").unwrap();

    // A file that is not a certificate: the producer cannot be created.
    let host = TestHost::default();
    let config = json!({ "brokers": ["127.0.0.1:1"], "tls": { "ca_file": bad_path } });
    let mut inst = tfo_plugin_api::testing::create(module(), &host, "kafka", &config.to_string())
        .expect("create only validates");
    let RResult::RErr(e) = inst.start() else {
        panic!("start accepted a CA file that is not a certificate")
    };
    assert_eq!(e.kind, ErrorKind::Permanent, "{e:?}");
    assert!(e.message.contains("ssl.ca.location"), "{e:?}");

    // A real CA: the producer starts and connects with TLS, which the plaintext
    // mock broker cannot answer.
    let mock = cluster(1, &TOPICS);
    let host = TestHost::default();
    let mut inst = start(
        &host,
        json!({ "brokers": [mock.bootstrap_servers()], "timeout": "1s",
                "tls": { "ca_file": ca_path } }),
    );
    let e = export(&mut inst, &batch()).expect_err("no TLS listener");
    assert_eq!(e.kind, ErrorKind::Retryable, "{e:?}");
    let line = host.wait_for_log("SSL", Duration::from_secs(5));
    assert!(line.contains("ssl://"), "{line}");
    assert_eq!(inst.health().state, HealthState::Unhealthy);
    stop(inst);
}
