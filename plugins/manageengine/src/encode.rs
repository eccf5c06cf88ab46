//! The agent's data model -> the OTLP requests Site24x7 / OpManager Nexus take.
//!
//! The mapping is the shared [`tfo_plugin_common::otlp`] encoder (one `Resource*`
//! per request, scopes from the `otel.scope.*` attributes), as the vendor's page
//! asks for plain OTLP ("Export OpenTelemetry data to Site24x7",
//! <https://www.site24x7.com/help/apm/opentelemetry/export-opentelemetry-data.html>).
//! Added here: the configured `service_name` and `tags` become resource attributes
//! when the batch's resource lacks that key (an application's own identity wins).
//! Site24x7 groups OpenTelemetry data by `service.name`, so a batch without one
//! (host metrics from the agent) gets `service_name` when it is configured.

use tfo_plugin_api::Batch;
use tfo_plugin_common::otlp::{self, prost::Message as _};

use crate::config::Signal;

/// One encoded OTLP/HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The signal (and so the path).
    pub signal: Signal,
    /// Binary protobuf body.
    pub body: Vec<u8>,
    /// Items carried (points or records).
    pub items: u64,
}

/// The configured `service.name` and tags added to each resource that lacks them
/// (shared with the other OTLP sinks).
pub use tfo_plugin_common::otlp_resource::ResourceExtras;

/// The requests for `batch` (configured signals it holds; spans are never
/// sent), and the number of metric points the OTLP encoder could not express.
pub fn requests(
    batch: &Batch,
    signals: &[Signal],
    extras: &ResourceExtras,
) -> (Vec<Outgoing>, u64) {
    let mut out = Vec::new();
    let mut skipped = 0;
    if signals.contains(&Signal::Metrics) {
        let (req, bad) = otlp::metrics(batch);
        skipped = bad;
        if let Some(mut r) = req {
            for rm in &mut r.resource_metrics {
                extras.apply(&mut rm.resource);
            }
            let points: u64 = batch.metrics.iter().map(|m| m.points.len() as u64).sum();
            out.push(Outgoing {
                signal: Signal::Metrics,
                body: r.encode_to_vec(),
                items: points.saturating_sub(bad),
            });
        }
    }
    if signals.contains(&Signal::Logs) {
        if let Some(mut r) = otlp::logs(batch) {
            for rl in &mut r.resource_logs {
                extras.apply(&mut rl.resource);
            }
            out.push(Outgoing {
                signal: Signal::Logs,
                body: r.encode_to_vec(),
                items: batch.logs.len() as u64,
            });
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{KeyValue, Metric, Resource, Span, SpanKind, StatusCode};
    use tfo_plugin_common::otlp::opentelemetry_proto::tonic::{
        collector::metrics::v1::ExportMetricsServiceRequest, metrics::v1::metric,
    };

    #[test]
    fn golden_metric_request_with_service_name() {
        let b = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host.name", "db-1")].into(),
            },
            metrics: vec![Metric::gauge(
                "system.memory.utilization",
                "1",
                1_700_000_000_000_000_000,
                0.5,
                vec![KeyValue::new("state", "used")],
            )]
            .into(),
            ..Default::default()
        };
        let tags = [("env".to_string(), "prod".to_string())];
        let extras = ResourceExtras::new(Some("tfo-agent"), tags.iter().map(|(k, v)| (k, v)));
        let (reqs, skipped) = requests(&b, &[Signal::Metrics, Signal::Logs], &extras);
        assert_eq!(skipped, 0);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].items, 1);
        let got = ExportMetricsServiceRequest::decode(&reqs[0].body[..]).unwrap();
        let rm = &got.resource_metrics[0];
        let keys: Vec<&str> = rm
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(keys, vec!["host.name", "service.name", "env"]);
        let m = &rm.scope_metrics[0].metrics[0];
        assert_eq!(m.name, "system.memory.utilization");
        match &m.data {
            Some(metric::Data::Gauge(g)) => assert_eq!(g.data_points.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spans_are_never_encoded() {
        let b = Batch {
            spans: vec![Span {
                trace_id: [1; 16],
                span_id: [1; 8],
                parent_span_id: [0; 8],
                name: "x".into(),
                kind: SpanKind::Internal,
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                status_code: StatusCode::Unset,
                status_message: "".into(),
                attributes: vec![].into(),
                events: vec![].into(),
            }]
            .into(),
            ..Default::default()
        };
        let (reqs, _) = requests(
            &b,
            &[Signal::Metrics, Signal::Logs],
            &ResourceExtras::default(),
        );
        assert!(reqs.is_empty());
    }
}
