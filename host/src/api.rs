//! The HTTP API (hyper): `GET /health`, `GET /plugins`, `GET /metrics`. Loopback by
//! default; with `http.token` set, every request needs `Authorization: Bearer
//! <token>`.

use std::{
    convert::Infallible,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use http_body_util::Full;
use hyper::{body::Bytes, header, Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::{
    plugin::manager::PluginManager,
    status::{State, StatusView},
};

/// Config reload counters, shown on `/metrics`.
#[derive(Default)]
pub struct ReloadStats {
    /// Reloads applied.
    pub ok: AtomicU64,
    /// Reloads refused (invalid config).
    pub failed: AtomicU64,
}

/// What the handlers read.
pub struct ApiState {
    /// The plugin manager.
    pub manager: PluginManager,
    /// Bearer token, when required.
    pub token: Option<String>,
    /// Reload counters.
    pub reloads: Arc<ReloadStats>,
}

/// Connections served at once; more are closed on accept (the API is for status
/// probes and scrapers, a handful of clients).
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request head within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request head size limit (hyper answers 431 beyond it); the API takes no bodies.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A connection, keep-alive included, is closed after this long.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("api accept failed: {e}");
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("api: {MAX_CONNECTIONS} connections open, closing the one from {peer}");
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(io, svc);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => tracing::debug!("api connection: {e}"),
                Err(_) => tracing::debug!(
                    "api connection from {peer} closed after {CONNECTION_LIFETIME:?}"
                ),
                Ok(Ok(())) => {}
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        // Plugin errors and reasons can quote config values: mask secrets.
        .body(Full::new(Bytes::from(
            crate::redact::redact(&body).into_owned(),
        )))
        .expect("valid response")
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        serde_json::to_string_pretty(v).expect("serializable"),
    )
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle<B>(state: &ApiState, req: Request<B>) -> Response<Full<Bytes>> {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "missing or wrong bearer token"}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    if req.method() != hyper::Method::GET {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "only GET is supported"}),
        );
    }
    match req.uri().path() {
        "/health" => health(state),
        "/plugins" => plugins(state).await,
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(state).await,
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not found", "paths": ["/health", "/plugins", "/metrics"]}),
        ),
    }
}

/// `GET /health`: 200 when every enabled integration is healthy, else 503.
fn health(state: &ApiState) -> Response<Full<Bytes>> {
    let all = state.manager.statuses();
    let healthy = all
        .iter()
        .filter(|s| s.state != State::Disabled)
        .all(|s| s.state == State::Healthy);
    let body = serde_json::json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "integrations": all,
    });
    json(
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

/// One entry of `GET /plugins`: a configured instance, or a plugin file the agent
/// refused (`instance` null, `state` "Refused", `reason` says why).
#[derive(Serialize)]
struct PluginEntry {
    instance: Option<String>,
    plugin: String,
    version: String,
    file: String,
    sha256: String,
    generation: u64,
    state: String,
    reason: Option<String>,
    last_error: Option<String>,
    plugin_api_version: String,
}

async fn plugins(state: &ApiState) -> Response<Full<Bytes>> {
    let mut list: Vec<PluginEntry> = state
        .manager
        .statuses()
        .into_iter()
        .filter(|s| s.state != State::Disabled)
        .map(|s: StatusView| PluginEntry {
            instance: Some(s.instance),
            plugin: s.plugin,
            version: s.generation.version,
            file: s.generation.file,
            sha256: s.generation.sha256,
            generation: s.generation.generation,
            state: format!("{:?}", s.state),
            reason: s.reason,
            last_error: s.last_error,
            plugin_api_version: s.generation.plugin_api_version,
        })
        .collect();
    for r in state.manager.refusals() {
        let name = r
            .file
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(crate::plugin::files::plugin_name_of)
            .unwrap_or_default();
        list.push(PluginEntry {
            instance: None,
            plugin: name,
            version: String::new(),
            file: r.file.display().to_string(),
            sha256: r.sha256.unwrap_or_default(),
            generation: 0,
            state: "Refused".into(),
            reason: Some(r.reason),
            last_error: None,
            plugin_api_version: String::new(),
        });
    }
    json(StatusCode::OK, &list)
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-instance series: name, help text, and how to read it from a status.
type Counter = (&'static str, &'static str, fn(&StatusView) -> u64);

/// The agent's own metrics in the Prometheus text format.
pub async fn metrics(state: &ApiState) -> String {
    let mut o = String::new();
    let statuses = state.manager.statuses();
    let _ = writeln!(o, "# HELP tfo_agent_build_info Agent and plugin-api versions.\n# TYPE tfo_agent_build_info gauge");
    let _ = writeln!(
        o,
        "tfo_agent_build_info{{version=\"{}\",plugin_api=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
    let counters: [Counter; 12] = [
        (
            "tfo_agent_items_exported_total",
            "Items delivered by a sink.",
            |s| s.items_exported,
        ),
        (
            "tfo_agent_bytes_exported_total",
            "Bytes delivered by a sink (host's measure).",
            |s| s.bytes_exported,
        ),
        ("tfo_agent_errors_total", "Failed plugin calls.", |s| {
            s.errors
        }),
        ("tfo_agent_export_retries_total", "Export retries.", |s| {
            s.retries
        }),
        (
            "tfo_agent_items_dropped_total",
            "Items dropped (queue full, permanent errors).",
            |s| s.drops,
        ),
        (
            "tfo_agent_instance_restarts_total",
            "Instance restarts after a panic or hang.",
            |s| s.restarts,
        ),
        (
            "tfo_agent_plugin_panics_total",
            "Panics caught in plugins.",
            |s| s.panics,
        ),
        (
            "tfo_agent_items_collected_total",
            "Items produced by a source.",
            |s| s.items_collected,
        ),
        (
            "tfo_agent_emits_refused_total",
            "Push-source emits answered Full while a destination queue was full (backpressure).",
            |s| s.emits_refused,
        ),
        (
            "tfo_agent_batches_reclaimed_total",
            "Exported batches handed back to the push source that emitted them, to be refilled instead of allocated.",
            |s| s.batches_reclaimed,
        ),
        (
            "tfo_agent_queue_items",
            "Items waiting in a sink queue.",
            |s| s.queued_items,
        ),
        (
            "tfo_agent_buffer_corrupt_records_total",
            "Disk-buffer records skipped as damaged.",
            |s| s.buffer_corrupt_records,
        ),
    ];
    for (name, help, get) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in statuses.iter().filter(|s| s.state != State::Disabled) {
            let _ = writeln!(
                o,
                "{name}{{instance=\"{}\",plugin=\"{}\"}} {}",
                esc(&s.instance),
                esc(&s.plugin),
                get(s)
            );
        }
    }
    let _ = writeln!(o, "# HELP tfo_agent_export_latency_seconds Latency of the last export.\n# TYPE tfo_agent_export_latency_seconds gauge");
    for s in statuses.iter().filter(|s| s.state != State::Disabled) {
        let _ = writeln!(
            o,
            "tfo_agent_export_latency_seconds{{instance=\"{}\",plugin=\"{}\"}} {}",
            esc(&s.instance),
            esc(&s.plugin),
            s.last_export_latency_seconds
        );
    }
    let _ = writeln!(o, "# HELP tfo_agent_integration_state 1 for the integration's current state.\n# TYPE tfo_agent_integration_state gauge");
    for s in &statuses {
        for st in [
            State::Disabled,
            State::Initializing,
            State::Healthy,
            State::Unhealthy,
        ] {
            let _ = writeln!(
                o,
                "tfo_agent_integration_state{{instance=\"{}\",state=\"{st:?}\"}} {}",
                esc(&s.instance),
                u8::from(s.state == st)
            );
        }
    }
    let _ = writeln!(o, "# HELP tfo_agent_plugin_generation Generation of the plugin library an instance runs.\n# TYPE tfo_agent_plugin_generation gauge");
    for s in statuses.iter().filter(|s| s.generation.generation > 0) {
        let _ = writeln!(o, "tfo_agent_plugin_generation{{instance=\"{}\",plugin=\"{}\",version=\"{}\",sha256=\"{}\"}} {}", esc(&s.instance), esc(&s.plugin), esc(&s.generation.version), esc(&s.generation.sha256), s.generation.generation);
    }
    let g = state.manager.graveyard();
    let refused = state.manager.refusals().len();
    let reload_ok = state.reloads.ok.load(Ordering::Relaxed);
    let reload_failed = state.reloads.failed.load(Ordering::Relaxed);
    let _ = write!(
        o,
        "# HELP tfo_agent_plugin_libraries_unloaded_total Retired plugin libraries unmapped.\n# TYPE tfo_agent_plugin_libraries_unloaded_total counter\ntfo_agent_plugin_libraries_unloaded_total {}\n\
         # HELP tfo_agent_plugin_libraries_still_mapped Retired libraries still mapped after dlclose (kept).\n# TYPE tfo_agent_plugin_libraries_still_mapped gauge\ntfo_agent_plugin_libraries_still_mapped {}\n\
         # HELP tfo_agent_plugin_libraries_pending Retired libraries waiting for their last instance or queued batch before they are closed.\n# TYPE tfo_agent_plugin_libraries_pending gauge\ntfo_agent_plugin_libraries_pending {}\n\
         # HELP tfo_agent_plugin_instances_stuck Retired instances whose thread did not end (library kept).\n# TYPE tfo_agent_plugin_instances_stuck gauge\ntfo_agent_plugin_instances_stuck {}\n\
         # HELP tfo_agent_plugin_files_refused Plugin files refused at the last scan.\n# TYPE tfo_agent_plugin_files_refused gauge\ntfo_agent_plugin_files_refused {refused}\n\
         # HELP tfo_agent_config_reloads_total Config reloads by result.\n# TYPE tfo_agent_config_reloads_total counter\ntfo_agent_config_reloads_total{{result=\"ok\"}} {reload_ok}\ntfo_agent_config_reloads_total{{result=\"failed\"}} {reload_failed}\n",
        g.unloaded, g.still_mapped, g.pending, g.stuck_instances
    );
    o
}
