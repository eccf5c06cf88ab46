//! Test harness shared by the kafka tests: drives the plugin through its exported
//! root module, the way the agent does, against librdkafka's mock cluster
//! (`rd_kafka_mock_cluster_new`, an in-process Kafka protocol implementation on
//! loopback ports, shipped in librdkafka itself), and reads back what was produced
//! with an independent rdkafka consumer.
//!
//! Nothing external is needed beyond librdkafka, which the crate links against
//! (Debian `librdkafka-dev` to build, `librdkafka1` to run), so no test skips.

#![allow(dead_code)] // each test binary uses a different part

use std::time::{Duration, Instant};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::Message as _,
    mocking::MockCluster,
    producer::DefaultProducerContext,
    ClientConfig, Offset, TopicPartitionList,
};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, DataPoint, KeyValue, LogRecord,
    Metric, PluginInstanceBox, PluginModRef, PointValue, Resource, Span, SpanKind, StatusCode,
};

pub use tfo_plugin_api::testing::TestHost;

/// Partitions of every test topic.
pub const PARTITIONS: i32 = 3;
/// Default topics.
pub const TOPICS: [&str; 3] = ["otlp_metrics", "otlp_spans", "otlp_logs"];
/// A timestamp for fixtures.
pub const T: u64 = 1_700_000_000_000_000_000;

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_kafka)
}

/// A mock cluster of `brokers` brokers with `topics` created.
pub fn cluster(brokers: i32, topics: &[&str]) -> MockCluster<'static, DefaultProducerContext> {
    let c = MockCluster::new(brokers).expect("librdkafka mock cluster");
    for t in topics {
        c.create_topic(t, PARTITIONS, brokers.min(3))
            .expect("create mock topic");
    }
    c
}

/// Creates and starts an instance with `config` (a JSON object).
pub fn start(host: &TestHost, config: serde_json::Value) -> PluginInstanceBox {
    tfo_plugin_api::testing::create_started(module(), host, "kafka", &config.to_string())
}

/// Exports `batch` through the FFI instance (re-exported for the tests that glob
/// `common::*`; config.rs does not use it).
#[allow(unused_imports)]
pub use tfo_plugin_api::testing::export;

/// Shuts the instance down.
pub fn stop(mut inst: PluginInstanceBox) {
    if let RResult::RErr(e) = inst.shutdown(5_000) {
        panic!("shutdown failed: {e:?}");
    }
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

impl Consumed {
    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| String::from_utf8(k.clone()).expect("utf-8 key"))
    }
}

/// Reads every partition of `topics` from the beginning until `n` records arrived
/// or `timeout` passed (a blocking poll: librdkafka wakes it when a fetch
/// answers), then briefly more to catch unexpected extra records.
pub fn consume(bootstrap: &str, topics: &[&str], n: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tfo-kafka-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(t, p, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut extra_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || extra_until.is_some_and(|t| now >= t) {
            break;
        }
        if let Some(r) = consumer.poll(Duration::from_millis(200)) {
            let m = r.expect("consume");
            out.push(Consumed {
                topic: m.topic().to_string(),
                partition: m.partition(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
        if out.len() >= n && extra_until.is_none() {
            extra_until = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    out
}

/// A batch with two metrics (one a NaN gauge), three spans in two traces and two
/// log records: 3 points + 3 spans + 2 logs = 8 items.
pub fn batch() -> Batch {
    let mut counter = Metric::counter(
        "http.requests",
        "{request}",
        T - 1_000,
        T,
        42.0,
        vec![KeyValue::new("route", "/cart")],
    );
    counter.points.push(DataPoint {
        attributes: vec![KeyValue::new("route", "/pay")].into(),
        start_time_unix_nano: T - 1_000,
        time_unix_nano: T,
        value: PointValue::Int(7),
    });
    let span = |trace: u8, id: u8, name: &str| Span {
        trace_id: [trace; 16],
        span_id: [id; 8],
        parent_span_id: [0; 8],
        name: name.into(),
        kind: SpanKind::Server,
        start_time_unix_nano: T,
        end_time_unix_nano: T + 10,
        status_code: StatusCode::Ok,
        status_message: "".into(),
        attributes: vec![KeyValue::new("http.route", "/cart")].into(),
        events: vec![].into(),
    };
    let log = |body: &str| LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AnyValue::Str(body.into()),
        attributes: vec![].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    };
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "shop"),
                KeyValue::new("host.name", "web-1"),
            ]
            .into(),
        },
        metrics: vec![Metric::gauge("cpu.load", "1", T, f64::NAN, vec![]), counter].into(),
        spans: vec![
            span(7, 1, "checkout"),
            span(9, 2, "login"),
            span(7, 3, "db"),
        ]
        .into(),
        logs: vec![log("hello"), log("world")].into(),
    }
}
