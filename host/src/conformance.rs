//! `tfo-agent plugins check FILE`: a conformance kit vendors run on their plugin. It
//! loads the file in a scratch host and exercises the contract point by point:
//! trust and ABI checks, descriptor, config validation (an unknown key must be
//! refused with its path; the given config must be accepted), start, a reference
//! export (sinks) or one collection (sources), health, shutdown within the deadline,
//! and unload (the mapping must be gone).

use std::{path::Path, sync::Arc, time::Duration};

use serde::Serialize;
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, DataTypes, HistogramValue, KeyValue, LogRecord, Metric, MetricKind,
    PointValue, Span, SpanKind, StatusCode, Temporality,
};

use crate::plugin::{
    files,
    host_services::InstanceServices,
    instance::{CallErrorKind, InstanceWorker, Retired},
    library::{self, LoadedLibrary},
};

/// One checked point.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Short name.
    pub name: &'static str,
    /// Passed?
    pub pass: bool,
    /// What was seen.
    pub detail: String,
}

/// A batch with one of everything, for the export check.
pub fn reference_batch(types: DataTypes) -> Batch {
    let t = 1_700_000_000_000_000_000u64;
    let attrs = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| KeyValue::new(*k, *v))
            .collect::<Vec<_>>()
    };
    let mut b = Batch::default();
    b.resource.attributes = attrs(&[
        ("service.name", "tfo-conformance"),
        ("host.name", "conformance-host"),
    ])
    .into();
    if types.contains(DataTypes::METRICS) {
        b.metrics.push(Metric::gauge(
            "conformance.gauge",
            "1",
            t,
            0.5,
            attrs(&[("k", "v")]),
        ));
        b.metrics.push(Metric::counter(
            "conformance.requests",
            "{request}",
            t - 10_000_000_000,
            t,
            42.0,
            attrs(&[("route", "/")]),
        ));
        let mut h = Metric::gauge("conformance.latency", "s", t, 0.0, vec![]);
        h.kind = MetricKind::Histogram;
        h.temporality = Temporality::Cumulative;
        h.points = vec![DataPoint {
            attributes: Default::default(),
            start_time_unix_nano: t - 10_000_000_000,
            time_unix_nano: t,
            value: PointValue::Histogram(HistogramValue {
                count: 6,
                sum: Some(1.5).into(),
                bounds: vec![0.1, 0.5, 1.0].into(),
                bucket_counts: vec![1, 2, 2, 1].into(),
                min: Some(0.05).into(),
                max: Some(1.2).into(),
            }),
        }]
        .into();
        b.metrics.push(h);
    }
    if types.contains(DataTypes::TRACES) {
        b.spans.push(Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            name: "conformance-span".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: t,
            end_time_unix_nano: t + 1_000_000,
            status_code: StatusCode::Ok,
            status_message: Default::default(),
            attributes: attrs(&[("http.route", "/")]).into(),
            events: Default::default(),
        });
    }
    if types.contains(DataTypes::LOGS) {
        b.logs.push(LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AnyValue::Str("conformance log line".into()),
            attributes: attrs(&[("k", "v")]).into(),
            trace_id: [1; 16],
            span_id: [2; 8],
        });
    }
    b
}

const UNKNOWN_KEY: &str = "tfo_conformance_unknown_key";

/// Runs every check; `config` is the plugin's own config (a JSON object).
pub async fn check(file: &Path, config: serde_json::Value, deadline: Duration) -> Vec<Point> {
    let mut out = Vec::new();
    let mut push = |name, pass, detail: String| out.push(Point { name, pass, detail });
    let shadow = match tempfile::Builder::new()
        .prefix("tfo-agent-check-")
        .tempdir()
    {
        Ok(s) => s,
        Err(e) => {
            push(
                "load",
                false,
                format!("cannot create a scratch directory: {e}"),
            );
            return out;
        }
    };
    let trusted = match files::trust(file, None) {
        Ok(t) => t,
        Err(e) => {
            push("trust", false, e);
            return out;
        }
    };
    push(
        "trust",
        true,
        format!(
            "regular file, {}, sha256 {}",
            crate::plugin::platform::OWNER_RULE,
            trusted.sha256
        ),
    );
    let shadow_dir = shadow.path().to_path_buf();
    let lib = match tokio::task::spawn_blocking(move || {
        library::load_on_fresh_thread(trusted, shadow_dir, None)
    })
    .await
    {
        Ok(Ok(l)) => Arc::new(l),
        Ok(Err(e)) => {
            push("load", false, e.0);
            return out;
        }
        Err(e) => {
            push("load", false, e.to_string());
            return out;
        }
    };
    push("load", true, format!("ABI compatible ({})", lib.abi_info));
    let d = lib.descriptor.clone();
    let file_name = file
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(files::plugin_name_of);
    let mut problems = Vec::new();
    if d.name.is_empty() {
        problems.push("empty name".to_string());
    }
    if d.version.is_empty() {
        problems.push("empty version".into());
    }
    if d.data_types.is_empty() {
        problems.push("no data types".into());
    }
    if file_name
        .as_deref()
        .is_some_and(|f| f != files::normalize_name(&d.name))
    {
        problems.push(format!(
            "file is named for {:?} but the plugin says {:?}",
            file_name.unwrap_or_default(),
            d.name
        ));
    }
    push(
        "descriptor",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{} {} {} [{}]",
                d.name,
                d.version,
                d.kind,
                d.data_types.join(", ")
            )
        } else {
            problems.join("; ")
        },
    );

    // Config validation: an unknown key must be refused, with its path.
    let mut bad = config.clone();
    if let Some(m) = bad.as_object_mut() {
        m.insert(UNKNOWN_KEY.into(), serde_json::Value::Bool(true));
    }
    match spawn(&lib, "conformance-bad", &bad).await {
        Ok(w) => {
            push("config: unknown key refused", false, format!("create accepted the unknown key {UNKNOWN_KEY:?} (use #[serde(deny_unknown_fields)])"));
            if let (Retired::Stuck(stuck), _) = w.retire(deadline).await {
                // Never close a library under a running thread.
                std::mem::forget(stuck);
            }
        }
        Err(f) => {
            let named = f
                .config_errors
                .iter()
                .any(|(p, m)| p.contains(UNKNOWN_KEY) || m.contains(UNKNOWN_KEY));
            push("config: unknown key refused", named, format!("{f}"));
        }
    }
    let worker = match spawn(&lib, "conformance", &config).await {
        Ok(w) => {
            push(
                "config: given config accepted",
                true,
                "create succeeded".into(),
            );
            w
        }
        Err(f) => {
            push("config: given config accepted", false, f.to_string());
            return finish(out, lib);
        }
    };
    let mut push = |name, pass, detail: String| out.push(Point { name, pass, detail });
    match worker.start(deadline).await {
        Ok(()) => push("start", true, "started".into()),
        Err(e) => push("start", false, e.to_string()),
    }
    if d.kind_enum.is_sink() {
        let batch = Arc::new(crate::pipeline::HeldBatch::own(reference_batch(
            d.data_types_flags,
        )));
        let n = batch.item_count();
        match worker.export(batch, deadline).await {
            Ok(accepted) => push(
                "export reference batch",
                true,
                format!("{n} items sent, {accepted} accepted"),
            ),
            Err(e) if e.kind == CallErrorKind::Retryable => push(
                "export reference batch",
                true,
                format!(
                    "returned a retryable error (backend not reachable from here?): {}",
                    e.message
                ),
            ),
            Err(e) => push("export reference batch", false, e.to_string()),
        }
    }
    if d.kind_enum.is_source() {
        match worker.collect(deadline).await {
            Ok(b) => push("collect", true, format!("{} items", b.item_count())),
            Err(e) if e.kind == CallErrorKind::Unsupported => {
                push("collect", true, "push source (collect unsupported)".into())
            }
            Err(e) => push("collect", false, e.to_string()),
        }
    }
    match worker.health(deadline).await {
        Ok(h) => push("health", true, format!("{:?} {}", h.state, h.reason)),
        Err(e) => push("health", false, e.to_string()),
    }
    let started = std::time::Instant::now();
    match worker.retire(deadline).await {
        (Retired::Joined, None) => push(
            "shutdown within deadline",
            true,
            format!("{:?}", started.elapsed()),
        ),
        (Retired::Joined, Some(e)) => push(
            "shutdown within deadline",
            false,
            format!("shutdown returned an error: {e}"),
        ),
        (Retired::Stuck(stuck), _) => {
            push(
                "shutdown within deadline",
                false,
                "a thread of the plugin (the instance thread, or one it started) is still running after shutdown".into(),
            );
            // Closing the library under a running thread would crash this process:
            // keep it loaded until exit, as the agent does.
            std::mem::forget(stuck);
            out.push(Point {
                name: "unload",
                pass: false,
                detail: "not attempted: the plugin still runs code".into(),
            });
            return out;
        }
    }
    finish(out, lib)
}

async fn spawn(
    lib: &Arc<LoadedLibrary>,
    name: &str,
    config: &serde_json::Value,
) -> Result<InstanceWorker, crate::plugin::instance::CreateFailure> {
    let host = InstanceServices::handle(
        &lib.descriptor.name,
        name,
        Some(Arc::new(|_: tfo_plugin_api::Batch| {
            tfo_plugin_api::EmitStatus::Accepted
        })),
        Default::default(),
    );
    InstanceWorker::spawn(lib.clone(), name, config.to_string(), host).await
}

fn finish(mut out: Vec<Point>, lib: Arc<LoadedLibrary>) -> Vec<Point> {
    match Arc::try_unwrap(lib) {
        Ok(l) => {
            let o = l.unload();
            out.push(Point {
                name: "unload",
                pass: !o.still_mapped,
                detail: if o.still_mapped {
                    "still mapped after dlclose: a thread of the plugin outlived shutdown".into()
                } else {
                    "mapping gone".into()
                },
            });
        }
        Err(_) => out.push(Point {
            name: "unload",
            pass: false,
            detail: "an instance of the plugin is still alive".into(),
        }),
    }
    out
}
