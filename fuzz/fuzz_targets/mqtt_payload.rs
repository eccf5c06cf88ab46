//! MQTT subscription payloads: JSON (default shapes and with a field mapping) and
//! Influx line protocol, as received on a subscribed topic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tfo_mqtt::config::Subscription;

fn sub(json: &str) -> Subscription {
    serde_json::from_str(json).expect("valid subscription")
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static SUBS: Vec<Subscription> = vec![
            sub(r#"{"topic": "t/#", "format": "json"}"#),
            sub(r#"{"topic": "t/#", "format": "influx"}"#),
            sub(r#"{"topic": "t/#", "format": "json", "mapping": {"values": ["a.b", "c"], "name_field": "n", "timestamp": "ts", "labels": {"site": "l.m"}}}"#),
        ];
    }
    SUBS.with(|subs| {
        for s in subs {
            let _ = tfo_mqtt::decode::decode(s, "t/x", data, 1_700_000_000_000_000_000);
        }
    });
    // The line-protocol parser itself (shared with the influxdb receiver, in
    // tfo-plugin-common) is reached through the `influx` subscription above and
    // through the `influx_lines` target.
});
