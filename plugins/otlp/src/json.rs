//! OTLP/JSON for the receiver and the exporter: the codec is the shared
//! `tfo_plugin_common::otlp_json` one (the kafka plugin writes the same encoding),
//! re-exported here; the tests below check it against the specification's examples
//! in `tests/data`.

pub use tfo_plugin_common::otlp_json::{JsonCodec, OtlpMessage};

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{
        collector::{
            logs::v1::{
                ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
            },
            metrics::v1::ExportMetricsServiceRequest,
            trace::v1::{
                ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
            },
        },
        common::v1::any_value,
        metrics::v1::{metric, number_data_point},
    };
    use serde_json::Value;

    fn codec() -> JsonCodec {
        JsonCodec::new().unwrap()
    }

    fn example(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn decodes_the_official_trace_example() {
        let req: ExportTraceServiceRequest = codec().decode(&example("trace.json")).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            tfo_plugin_common::hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(
            tfo_plugin_common::hex::encode(&span.span_id),
            "eee19b7ec3c1b174"
        );
        assert_eq!(
            tfo_plugin_common::hex::encode(&span.parent_span_id),
            "eee19b7ec3c1b173"
        );
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.name, "I'm a server span");
    }

    #[test]
    fn decodes_the_official_metrics_and_logs_examples() {
        let req: ExportMetricsServiceRequest = codec().decode(&example("metrics.json")).unwrap();
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0])
        };
        assert_eq!(sum.aggregation_temporality, 1);
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(5.0))
        );
        assert!(metrics
            .iter()
            .any(|m| matches!(m.data, Some(metric::Data::Histogram(_)))));

        let req: ExportLogsServiceRequest = codec().decode(&example("logs.json")).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 10);
        assert_eq!(rec.trace_id.len(), 16);
        let int_attr = rec
            .attributes
            .iter()
            .find(|a| a.key == "int.attribute")
            .unwrap();
        assert_eq!(
            int_attr.value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(10))
        );
    }

    #[test]
    fn accepts_enum_names_numbers_as_numbers_nan_and_unknown_fields() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
            "kind":"SPAN_KIND_CLIENT","startTimeUnixNano":1544712660000000000,
            "status":{"code":"STATUS_CODE_ERROR"},"futureField":{"x":1},
            "attributes":[{"key":"n","value":{"doubleValue":"NaN"}}]}]}]}],
            "somethingNew":true}"#;
        let req: ExportTraceServiceRequest = codec().decode(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 3);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        let Some(any_value::Value::DoubleValue(d)) =
            span.attributes[0].value.as_ref().unwrap().value
        else {
            panic!()
        };
        assert!(d.is_nan());
    }

    #[test]
    fn null_means_absent() {
        let body = br#"{"resourceSpans":[{"resource":null,"scopeSpans":[{"scope":null,
            "spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":null,
            "attributes":null,"kind":null,"startTimeUnixNano":null}]}]}]}"#;
        let req: ExportTraceServiceRequest = codec().decode(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert!(span.span_id.is_empty() && span.attributes.is_empty());
        assert_eq!((span.kind, span.start_time_unix_nano), (0, 0));
        assert!(req.resource_spans[0].resource.is_none());
    }

    #[test]
    fn rejects_malformed_bodies_with_a_reason() {
        let c = codec();
        for (body, want) in [
            (&b"{"[..], "invalid JSON"),
            (b"[]", "ExportTraceServiceRequest"),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
                "traceId",
            ),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
                "ExportTraceServiceRequest",
            ),
        ] {
            let e = c.decode::<ExportTraceServiceRequest>(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        // An enum name this version does not know is treated like an unknown field
        // (proto3 JSON with unknown fields ignored): the default value.
        let req: ExportTraceServiceRequest = c
            .decode(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NEW"}]}]}]}"#)
            .unwrap();
        assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].kind, 0);
    }

    #[test]
    fn encodes_hex_ids_integer_enums_and_string_int64() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "kind":2,"startTimeUnixNano":"1544712660000000000","name":"x"}]}]}]}"#;
        let c = codec();
        let req: ExportTraceServiceRequest = c.decode(body).unwrap();
        let out: Value = serde_json::from_slice(&c.encode(&req).unwrap()).unwrap();
        let span = &out["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["spanId"], "eee19b7ec3c1b174");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
        assert!(span.get("parentSpanId").is_none(), "{span}");
        // And back.
        let again: ExportTraceServiceRequest =
            c.decode(&serde_json::to_vec(&out).unwrap()).unwrap();
        assert_eq!(again, req);
    }

    #[test]
    fn responses_round_trip_with_partial_success() {
        let c = codec();
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "bad ids".into(),
            }),
        };
        let json: Value = serde_json::from_slice(&c.encode(&resp).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}})
        );
        let empty = c.encode(&ExportLogsServiceResponse::default()).unwrap();
        assert_eq!(empty, b"{}");
        let back: ExportLogsServiceResponse = c
            .decode(br#"{"partialSuccess":{"rejectedLogRecords":2}}"#)
            .unwrap();
        assert_eq!(
            back.partial_success,
            Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: String::new()
            })
        );
    }
}
