//! # tfo-plugin-common
//!
//! Code every tfo-agent plugin links statically (DESIGN.md §1): written once, tested
//! once, so each integration only writes its own mapping and protocol details.
//!
//! - [`http`]: an HTTP/1.1 + HTTP/2 client (hyper 1, hyper-util's pooled client,
//!   rustls with the `ring` provider) with TLS verification on by default, the
//!   system CA store plus an optional extra CA file, gzip request bodies and a
//!   timeout covering the whole exchange. It runs on the instance runtime
//!   (`ctx.block_on` / `ctx.spawn`), never on a global one.
//! - [`retry`]: turns an HTTP answer or a transport failure into the
//!   [`PluginError`](tfo_plugin_api::PluginError) the host's retry loop understands
//!   (retryable or permanent, with the server's `Retry-After`).
//! - [`auth`]: small credential helpers (HTTP Basic) and the standard base64
//!   alphabet some wire formats need.
//! - [`chunk`]: splitting serialized entries into request bodies within a
//!   backend's count and size limits (gzip-aware, halving on 413), for the JSON
//!   intakes with per-request caps (datadog, newrelic).
//! - [`secret`]: a credential type for configs whose `Debug` prints `***`.
//! - [`endpoint`]: the check of a configured `http(s)://` endpoint URL.
//! - [`hex`]: lowercase hex of trace and span ids, which OTLP/JSON and most vendor
//!   formats write as hex.
//! - [`lineproto`]: the InfluxDB line protocol parser (in place, borrowing from
//!   the input), shared by the influxdb receiver and the mqtt source.
//! - [`reuse`]: writing a source's next batch into the memory of an exported one
//!   the host handed back (`Context::reclaimed_batch`), shared by the influxdb
//!   receiver and the snmp source.
//! - [`config`]: serde helpers shared by plugin configs (durations written like the
//!   agent's own config: `500ms`, `10s`, `5m`, `1h`, or a number of seconds).
//! - `otlp` (cargo feature `otlp`): the agent's data model -> OTLP export requests
//!   (opentelemetry-proto messages), shared by the plugins that send OTLP.
//! - `otlp_json` (cargo feature `otlp-json`): the OTLP/JSON codec (proto3 JSON with
//!   hex ids, via prost-reflect over the OTLP descriptors), shared by the otlp and
//!   kafka plugins.
//! - `otlp_http` (cargo feature `otlp`): OTLP/HTTP requests and answers as the
//!   OTLP spec defines them (retryable codes, `google.rpc.Status`,
//!   `partial_success`, resuming a partly delivered batch), shared by the plugins
//!   that post OTLP protobuf over HTTP.
//! - `otlp_resource` (cargo feature `otlp`): the configured `service.name` and
//!   tags added to each OTLP resource that lacks them, shared by OTLP sinks.
//! - `http_server` (cargo feature `server`): the HTTP/1 listener of the push
//!   receivers (influxdb, otlp): reuse-port binding, connection cap, header
//!   timeout, rate limit, graceful stop.
//! - `azure_auth` (cargo feature `azure-auth`): Microsoft Entra ID access tokens
//!   (client credentials or managed identity through IMDS), cached per audience,
//!   shared by the Azure plugins.
//! - `testing` (cargo feature `testing`): a strict local HTTP/HTTPS server for
//!   contract tests, with a generated CA, request recording and scripted answers;
//!   `testing_form`: a test-side decoder of form bodies (token requests).
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "azure-auth")]
pub mod azure_auth;
pub mod chunk;
pub mod config;
pub mod endpoint;
pub mod hex;
pub mod http;
#[cfg(feature = "server")]
pub mod http_server;
pub mod lineproto;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "otlp")]
pub mod otlp_http;
#[cfg(feature = "otlp-json")]
pub mod otlp_json;
#[cfg(feature = "otlp")]
pub mod otlp_resource;
pub mod retry;
pub mod reuse;
pub mod secret;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub mod testing_form;

/// The `User-Agent` every plugin sends unless told otherwise: `tfo-agent/<version>`.
pub const USER_AGENT: &str = concat!("tfo-agent/", env!("CARGO_PKG_VERSION"));
