//! The I/O: one `GET` of the configured URL with hyper, then [`crate::extract`], and
//! the health the outcome leaves behind. Used by both modes: the host's `collect`
//! runs [`Poller::poll`] with `ctx.block_on`, the push task awaits it on the
//! instance runtime.
//!
//! Error classification (what the host does with it: a source's failed collect is
//! logged, counted and shown in health; the next interval polls again):
//! - connection refused, timeout, 408, 429, 5xx: [`PluginError::retryable`] (with
//!   the server's `Retry-After`, in seconds, when it sent one);
//! - other non-2xx, a body over `max_response_bytes`, a body that is not JSON, or no
//!   configured value found: [`PluginError::permanent`] (polling again will not help
//!   until the server or the config changes);
//! - some values found, some not: `Ok` with the metrics found (a partial result),
//!   health Unhealthy naming each failed metric.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tfo_plugin_api::{Batch, CreateError, HealthReport, HealthState, PluginError};

use crate::{config::Config, extract};

/// The `User-Agent` sent unless the config sets one.
pub const USER_AGENT: &str = concat!("tfo-http-poller/", env!("CARGO_PKG_VERSION"));

/// Fetches and extracts; cheap to clone (clones share the connection pool and the
/// health), so the push task owns one.
#[derive(Clone)]
pub struct Poller {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    config: Arc<Config>,
    /// When this instance was created: the start time of counter points.
    start_unix_nano: u64,
    health: Arc<Mutex<HealthReport>>,
}

impl Poller {
    /// Prepares the client from a validated config; connects to nothing yet. Fails
    /// only on a TLS set-up error (an unusable `ca_file`, no CA at all).
    pub fn new(config: Config) -> Result<Poller, CreateError> {
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| CreateError::config("url", format!("{e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        for (k, v) in &config.headers {
            let path = || format!("headers.{k}");
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| CreateError::config(path(), e.to_string()))?;
            let value =
                HeaderValue::from_str(v).map_err(|e| CreateError::config(path(), e.to_string()))?;
            headers.insert(name, value);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(
                uri.scheme_str() == Some("https"),
                config.ca_file.as_deref(),
            )?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // The pool's idle-connection timer and every connection task run on the
        // runtime of the future that uses the client: the instance runtime, which
        // the SDK shuts down (and whose threads it joins) after `shutdown`.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Poller {
            client,
            uri,
            headers,
            config: Arc::new(config),
            start_unix_nano: now_unix_nano(),
            health: Arc::new(Mutex::new(HealthReport {
                state: HealthState::Initializing,
                reason: "not polled yet".into(),
            })),
        })
    }

    /// The config this poller runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Health after the last poll: Initializing before the first, Healthy when every
    /// metric was found, Unhealthy with what failed otherwise.
    pub fn health(&self) -> HealthReport {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the health (the push task reports backpressure through it too).
    pub fn set_health(&self, report: HealthReport) {
        *self.health.lock().unwrap_or_else(|e| e.into_inner()) = report;
    }

    /// One poll: `GET`, extract, update health. Must run on a tokio runtime (the
    /// instance's: `ctx.block_on` or a task from `ctx.spawn`).
    pub async fn poll(&self) -> Result<Batch, PluginError> {
        let result = self.poll_inner().await;
        match &result {
            Ok((_, failures)) if failures.is_empty() => self.set_health(HealthReport::healthy()),
            Ok((batch, failures)) => {
                let reason = format!(
                    "{} of {} metrics not found in {}: {}",
                    failures.len(),
                    failures.len() + batch.metrics.len(),
                    self.config.url,
                    failures.join("; ")
                );
                // Warn when what fails changes, not on every poll of a broken
                // config: the health report keeps saying it.
                if self.health().reason.as_str() != reason {
                    tracing::warn!("{reason}");
                }
                self.set_health(HealthReport::unhealthy(reason));
            }
            Err(e) => self.set_health(HealthReport::unhealthy(e.message.clone())),
        }
        result.map(|(batch, _)| batch)
    }

    async fn poll_inner(&self) -> Result<(Batch, Vec<String>), PluginError> {
        let body = match tokio::time::timeout(self.config.timeout, self.fetch()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(PluginError::retryable(format!(
                    "GET {}: no complete answer within {:?}",
                    self.config.url, self.config.timeout
                )))
            }
        };
        let x = extract::extract(
            &body,
            &self.config.metrics,
            now_unix_nano(),
            self.start_unix_nano,
        )
        .map_err(|e| PluginError::permanent(format!("GET {}: {e}", self.config.url)))?;
        if x.metrics.is_empty() {
            return Err(PluginError::permanent(format!(
                "GET {}: none of the configured metrics found: {}",
                self.config.url,
                x.failures.join("; ")
            )));
        }
        tracing::debug!(metrics = x.metrics.len(), "polled {}", self.config.url);
        let batch = Batch {
            metrics: x.metrics.into(),
            ..Batch::default()
        };
        Ok((batch, x.failures))
    }

    /// `GET` the URL and read the body (at most `max_response_bytes`).
    async fn fetch(&self) -> Result<Bytes, PluginError> {
        let url = &self.config.url;
        let mut req = Request::get(self.uri.clone())
            .body(Empty::<Bytes>::new())
            .map_err(|e| PluginError::permanent(format!("GET {url}: {e}")))?;
        *req.headers_mut() = self.headers.clone();
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| PluginError::retryable(format!("GET {url}: {}", error_chain(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(url, status, resp.headers()));
        }
        let limit = self.config.max_response_bytes;
        let limited = Limited::new(
            resp.into_body(),
            usize::try_from(limit).unwrap_or(usize::MAX),
        );
        match limited.collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(PluginError::permanent(
                format!("GET {url}: the response is larger than max_response_bytes ({limit})"),
            )),
            Err(e) => Err(PluginError::retryable(format!(
                "GET {url}: reading the response: {}",
                error_chain(&*e)
            ))),
        }
    }
}

/// The error for a non-2xx answer: 408, 429 and 5xx are retryable (with Retry-After
/// in seconds when the server sent one), other codes permanent.
fn status_error(url: &str, status: StatusCode, headers: &HeaderMap) -> PluginError {
    let msg = format!("GET {url}: HTTP {status}");
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        let e = PluginError::retryable(msg);
        match headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(secs) => e.with_retry_after(secs.saturating_mul(1000)),
            None => e,
        }
    } else {
        PluginError::permanent(msg)
    }
}

/// `e` and its sources, so "connection refused" is not hidden behind hyper's
/// "client error (Connect)".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The rustls set-up: the `ring` provider; for `https` URLs the system CA store
/// (rustls-native-certs) plus the certificates of `ca_file`, for `http` an empty
/// store (no TLS is ever used). Server certificates are always verified.
fn tls_config(https: bool, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, CreateError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("loading system CA certificates: {e}");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            let bad =
                |e: String| CreateError::config("ca_file", format!("{}: {e}", path.display()));
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".to_string()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        if roots.is_empty() {
            return Err(CreateError::init(
                "no usable CA certificate in the system store (set ca_file)",
            ));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CreateError::init(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::ErrorKind;

    #[test]
    fn status_classification() {
        let mut h = HeaderMap::new();
        let e = status_error("u", StatusCode::NOT_FOUND, &h);
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(e.message.as_str(), "GET u: HTTP 404 Not Found");
        assert_eq!(
            status_error("u", StatusCode::REQUEST_TIMEOUT, &h).kind,
            ErrorKind::Retryable
        );
        let e = status_error("u", StatusCode::BAD_GATEWAY, &h);
        assert_eq!(e.kind, ErrorKind::Retryable);
        assert_eq!(e.retry_after_ms.into_option(), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        let e = status_error("u", StatusCode::TOO_MANY_REQUESTS, &h);
        assert_eq!(e.kind, ErrorKind::Retryable);
        assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    }
}
