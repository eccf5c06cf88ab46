use std::time::Duration;

use tfo_plugin_api::{
    testing::{create, TestHost},
    Batch, ErrorKind, HealthState, KeyValue, Metric, PluginModRef,
};

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_hello_sink)
}

fn batch(points: usize) -> Batch {
    Batch {
        metrics: (0..points)
            .map(|i| Metric::gauge("g", "1", 1, i as f64, vec![KeyValue::new("i", i as i64)]))
            .collect::<Vec<_>>()
            .into(),
        ..Batch::default()
    }
}

#[test]
fn exports_and_accepts_up_to_max_items() {
    let host = TestHost::default();
    let config = r#"{"label": "hello", "max_items": 3}"#;
    let mut inst = create(module(), &host, "hello", config).expect("create");
    inst.start().into_result().expect("start");

    let ok = inst.export(&batch(2)).into_result().expect("export");
    assert_eq!(ok.accepted, 2);
    assert_eq!(inst.health().state, HealthState::Healthy);

    let ok = inst.export(&batch(5)).into_result().expect("export");
    assert_eq!(ok.accepted, 3);
    let health = inst.health();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(health.reason.contains("2 items refused"), "{health:?}");

    // A sink does not collect.
    let e = inst.collect().into_result().expect_err("collect");
    assert_eq!(e.kind, ErrorKind::Unsupported);

    inst.shutdown(1000).into_result().expect("shutdown");
    host.wait_for_log("hello: shutting down", Duration::from_secs(1));
    assert!(host.panics().is_empty());
}

#[test]
fn config_errors_carry_their_paths() {
    let host = TestHost::default();
    let e = create(
        module(),
        &host,
        "hello",
        r#"{"label": " ", "max_items": 0}"#,
    )
    .err()
    .expect("invalid");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["label", "max_items"]);

    let e = create(module(), &host, "hello", r#"{"label": "x", "max_item": 1}"#)
        .err()
        .expect("unknown key");
    assert_eq!(e.config_errors[0].path.as_str(), "max_item");
}

#[test]
fn backend_answers_map_to_retry_decisions() {
    use tfo_hello_sink::errors::classify;
    assert!(classify(204, None, "").is_ok());
    let e = classify(429, Some("7"), "slow down").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    assert_eq!(
        classify(503, None, "").unwrap_err().kind,
        ErrorKind::Retryable
    );
    assert_eq!(
        classify(400, None, "bad").unwrap_err().kind,
        ErrorKind::Permanent
    );
}
