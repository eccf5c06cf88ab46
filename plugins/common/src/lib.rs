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
//! - [`config`]: serde helpers shared by plugin configs (durations written like the
//!   agent's own config: `500ms`, `10s`, `5m`, `1h`, or a number of seconds).
//! - `otlp` (cargo feature `otlp`): the agent's data model -> OTLP export requests
//!   (opentelemetry-proto messages), shared by the plugins that send OTLP.
//! - `azure_auth` (cargo feature `azure-auth`): Microsoft Entra ID access tokens
//!   (client credentials or managed identity through IMDS), cached per audience,
//!   shared by the Azure plugins.
//! - `testing` (cargo feature `testing`): a strict local HTTP/HTTPS server for
//!   contract tests, with a generated CA, request recording and scripted answers.
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "azure-auth")]
pub mod azure_auth;
pub mod config;
pub mod http;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod retry;
#[cfg(feature = "testing")]
pub mod testing;

/// The `User-Agent` every plugin sends unless told otherwise: `tfo-agent/<version>`.
pub const USER_AGENT: &str = concat!("tfo-agent/", env!("CARGO_PKG_VERSION"));
