//! The agent's data model -> the OTLP requests Instana's otlp-acceptor takes.
//!
//! The mapping itself is the shared [`tfo_plugin_common::otlp`] encoder (one
//! `Resource*` per request, scopes from the `otel.scope.*` attributes). What is
//! Instana-specific, from "Sending OpenTelemetry data to the Instana backend"
//! (<https://www.ibm.com/docs/en/instana-observability/current?topic=opentelemetry-sending-data-instana-backend>):
//! - the backend needs a `host.id`, `faas.id` or `device.id` resource attribute, or
//!   an `x-instana-host` header naming the host. [`host_header`] gives the header
//!   value: the configured `host_id`, else, when the resource carries none of the
//!   three attributes, its `host.name` (the agent sets it on everything it
//!   collects);
//! - the configured `service_name` and `tags` are added to the resource
//!   attributes of each request when the batch's resource does not already have
//!   that key (data from an application wins over agent configuration).

use tfo_plugin_api::{AnyValue, Batch};
use tfo_plugin_common::otlp::{self, prost::Message as _};

use crate::config::Signal;

/// Resource attributes Instana accepts as the entity's identity.
pub const IDENTITY_ATTRIBUTES: [&str; 3] = ["host.id", "faas.id", "device.id"];

/// One encoded OTLP/HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The signal (and so the path).
    pub signal: Signal,
    /// Binary protobuf body.
    pub body: Vec<u8>,
    /// Items carried (points, spans, records).
    pub items: u64,
}

/// The configured `service.name` and tags added to each resource that lacks them
/// (shared with the other OTLP sinks).
pub use tfo_plugin_common::otlp_resource::ResourceExtras;

/// The `x-instana-host` value for a batch: `host_id`, else the resource's
/// `host.name` when it has no identity attribute; `None` when neither applies.
pub fn host_header(batch: &Batch, host_id: Option<&str>) -> Option<String> {
    if let Some(h) = host_id {
        return Some(h.to_string());
    }
    let attrs = &batch.resource.attributes;
    if attrs
        .iter()
        .any(|kv| IDENTITY_ATTRIBUTES.contains(&kv.key.as_str()))
    {
        return None;
    }
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == "host.name")
        .and_then(|kv| match &kv.value {
            AnyValue::Str(s) if !s.is_empty() => Some(s.to_string()),
            _ => None,
        })
}

/// The requests for `batch` (only the configured signals it holds), and the
/// number of metric points the OTLP encoder could not express.
pub fn requests(
    batch: &Batch,
    signals: &[Signal],
    extras: &ResourceExtras,
) -> (Vec<Outgoing>, u64) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for signal in [Signal::Metrics, Signal::Traces, Signal::Logs] {
        if !signals.contains(&signal) {
            continue;
        }
        let encoded = match signal {
            Signal::Metrics => {
                let (req, bad) = otlp::metrics(batch);
                skipped = bad;
                req.map(|mut r| {
                    for rm in &mut r.resource_metrics {
                        extras.apply(&mut rm.resource);
                    }
                    let points: u64 = batch.metrics.iter().map(|m| m.points.len() as u64).sum();
                    (r.encode_to_vec(), points.saturating_sub(bad))
                })
            }
            Signal::Traces => otlp::traces(batch).map(|mut r| {
                for rs in &mut r.resource_spans {
                    extras.apply(&mut rs.resource);
                }
                (r.encode_to_vec(), batch.spans.len() as u64)
            }),
            Signal::Logs => otlp::logs(batch).map(|mut r| {
                for rl in &mut r.resource_logs {
                    extras.apply(&mut rl.resource);
                }
                (r.encode_to_vec(), batch.logs.len() as u64)
            }),
        };
        if let Some((body, items)) = encoded {
            out.push(Outgoing {
                signal,
                body,
                items,
            });
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{KeyValue, LogRecord, Metric, Resource};
    use tfo_plugin_common::otlp::opentelemetry_proto::tonic::{
        collector::logs::v1::ExportLogsServiceRequest, common::v1::any_value,
    };

    fn batch(attrs: Vec<KeyValue>) -> Batch {
        Batch {
            resource: Resource {
                attributes: attrs.into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn host_header_follows_the_documented_rule() {
        let b = batch(vec![KeyValue::new("host.name", "web-1")]);
        assert_eq!(host_header(&b, None).as_deref(), Some("web-1"));
        assert_eq!(host_header(&b, Some("cfg")).as_deref(), Some("cfg"));
        for id in IDENTITY_ATTRIBUTES {
            let b = batch(vec![
                KeyValue::new("host.name", "web-1"),
                KeyValue::new(id, "x"),
            ]);
            assert_eq!(host_header(&b, None), None, "{id}");
        }
        assert_eq!(host_header(&batch(vec![]), None), None);
    }

    #[test]
    fn golden_log_request_with_resource_extras() {
        let mut b = batch(vec![KeyValue::new("service.name", "app")]);
        b.logs = vec![LogRecord {
            time_unix_nano: 5,
            observed_time_unix_nano: 6,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AnyValue::from("hello"),
            attributes: vec![].into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        }]
        .into();
        let tags = [("env".to_string(), "prod".to_string())];
        let extras = ResourceExtras::new(Some("tfo-agent"), tags.iter().map(|(k, v)| (k, v)));
        let (reqs, skipped) = requests(&b, &[Signal::Logs, Signal::Traces], &extras);
        assert_eq!(skipped, 0);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].signal, Signal::Logs);
        assert_eq!(reqs[0].items, 1);
        let got = ExportLogsServiceRequest::decode(&reqs[0].body[..]).unwrap();
        let res = got.resource_logs[0].resource.as_ref().unwrap();
        let attrs: Vec<(String, String)> = res
            .attributes
            .iter()
            .map(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => (kv.key.clone(), s.clone()),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        // The batch's own service.name wins; env is added.
        assert_eq!(
            attrs,
            vec![
                ("service.name".to_string(), "app".to_string()),
                ("env".to_string(), "prod".to_string())
            ]
        );
        let rec = &got.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 5);
        assert_eq!(rec.severity_number, 9);
        assert_eq!(rec.severity_text, "INFO");
    }

    #[test]
    fn only_configured_signals_present_in_the_batch_are_encoded() {
        let mut b = batch(vec![]);
        b.metrics = vec![Metric::gauge("m", "1", 1, 1.0, vec![])].into();
        let (reqs, _) = requests(
            &b,
            &[Signal::Metrics, Signal::Logs],
            &ResourceExtras::default(),
        );
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].signal, Signal::Metrics);
        let (reqs, _) = requests(&b, &[Signal::Logs], &ResourceExtras::default());
        assert!(reqs.is_empty());
    }
}
