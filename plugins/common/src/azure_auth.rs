//! Microsoft Entra ID access tokens for Azure APIs: client credentials (a service
//! principal's secret) or a managed identity (the Azure Instance Metadata Service),
//! one cached token per audience, refreshed before it expires.
//!
//! Shared by the `azure` sink (Azure Monitor audiences) and the `azure-arc` source
//! (Azure Resource Manager): built only with the cargo feature `azure-auth`. It
//! uses this crate's HTTP client and retry classification, serde, tokio and
//! percent-encoding.
//!
//! Protocols followed:
//! - OAuth 2.0 client credentials grant on the Microsoft identity platform
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>):
//!   `POST {authority_host}/{tenant}/oauth2/v2.0/token`, form-encoded
//!   `grant_type=client_credentials`, `client_id`, `client_secret`,
//!   `scope={audience}/.default` (an audience ending in `/` gives `//.default`, the
//!   form Azure's own SDKs use for `https://monitor.azure.com/`). Answer:
//!   `{"token_type":"Bearer","expires_in":3599,"access_token":"..."}`; errors are
//!   `{"error":"invalid_client","error_description":"AADSTS..."}` with 400/401.
//! - Managed identities through IMDS
//!   (<https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token>):
//!   `GET {imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={audience}`
//!   (plus `client_id=` for a user-assigned identity) with `Metadata: true`. The
//!   answer carries `expires_in` as a *string*. IMDS asks clients to retry 404
//!   (identity not yet available), 410, 429 and 5xx; 400 means no identity is
//!   assigned (permanent).
//!
//! Caching: a token is reused until `min(5 minutes, half its lifetime)` before it
//! expires (the refresh margin Azure's SDKs use); then a new one is fetched. If
//! that fetch fails while the old token is still valid, the old one is used and the
//! failure is logged. [`TokenSource::invalidate`] drops a token the API refused
//! (HTTP 401), so the caller can fetch a fresh one once.
//!
//! Secrets (the client secret, every access token) live in [`Secret`], whose
//! `Debug` prints `***`; they are never logged and never put in error messages.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{
    http::{HttpClient, Method, Request, Response},
    retry,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tfo_plugin_api::PluginError;

/// Default Microsoft Entra ID authority host (public cloud).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Default Azure Instance Metadata Service endpoint.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// IMDS token API version.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// Longest time before expiry at which a token is refreshed.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// RFC 3986 unreserved characters stay as they are; everything else is `%XX`
/// (valid in both form bodies and query strings).
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a form or query value (RFC 3986 unreserved characters kept).
pub fn escape(s: &str) -> String {
    utf8_percent_encode(s, ESCAPE).to_string()
}

/// A secret string (client secret, access token): its `Debug` and `Display` never
/// show it, so it cannot leak into a log line or an error by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How tokens are obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A service principal's client secret (client credentials grant).
    ClientSecret {
        /// Directory (tenant) id or domain.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
    },
    /// The managed identity of the Azure resource the agent runs on (IMDS).
    ManagedIdentity {
        /// Client id of a user-assigned identity; `None` for the system-assigned one.
        client_id: Option<String>,
    },
}

/// Where tokens come from; both configurable so tests (and sovereign clouds) can
/// point elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// IMDS base URL, e.g. `http://169.254.169.254`.
    pub imds_endpoint: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            authority_host: DEFAULT_AUTHORITY_HOST.to_string(),
            imds_endpoint: DEFAULT_IMDS_ENDPOINT.to_string(),
        }
    }
}

struct Cached {
    token: Secret,
    expires_at: Instant,
    refresh_at: Instant,
}

/// Hands out access tokens per audience, cached and refreshed before expiry.
pub struct TokenSource {
    credential: Credential,
    endpoints: Endpoints,
    http: HttpClient,
    // An async mutex held across the fetch: concurrent callers wait for one fetch
    // instead of each asking the identity provider.
    cache: tokio::sync::Mutex<HashMap<String, Cached>>,
    fetches: std::sync::atomic::AtomicU64,
    margin: Option<Duration>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("credential", &self.credential)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The token endpoint's answer (Entra: `expires_in` a number; IMDS: a string).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<NumOrString>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    N(f64),
    S(String),
}

impl NumOrString {
    fn seconds(&self) -> Option<u64> {
        match self {
            NumOrString::N(n) if n.is_finite() && *n >= 0.0 => Some(*n as u64),
            NumOrString::S(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenSource {
    /// A token source; nothing is fetched until the first [`TokenSource::token`].
    pub fn new(credential: Credential, endpoints: Endpoints, http: HttpClient) -> Self {
        TokenSource {
            credential,
            endpoints: Endpoints {
                authority_host: endpoints.authority_host.trim_end_matches('/').to_string(),
                imds_endpoint: endpoints.imds_endpoint.trim_end_matches('/').to_string(),
            },
            http,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            fetches: Default::default(),
            margin: None,
        }
    }

    /// Refreshes tokens `margin` before they expire instead of the default
    /// `min(5 minutes, half the lifetime)` (capped at the lifetime).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// How many tokens were fetched so far (for health and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid token for `audience` (e.g. `https://monitor.azure.com/`), from the
    /// cache or freshly fetched. Errors are retryable (network, 429, 5xx) or
    /// permanent (credentials refused, no managed identity).
    pub async fn token(&self, audience: &str) -> Result<Secret, PluginError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(c) = cache.get(audience) {
            if now < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        match self.fetch(audience).await {
            Ok((token, lifetime)) => {
                let now = Instant::now();
                let margin = self
                    .margin
                    .unwrap_or(MAX_REFRESH_MARGIN.min(lifetime / 2))
                    .min(lifetime);
                cache.insert(
                    audience.to_string(),
                    Cached {
                        token: token.clone(),
                        expires_at: now + lifetime,
                        refresh_at: now + lifetime - margin,
                    },
                );
                Ok(token)
            }
            Err(e) => match cache.get(audience) {
                // Refreshing early failed, but the old token still works.
                Some(c) if Instant::now() < c.expires_at => {
                    tracing::warn!(
                        "refreshing the access token for {audience} failed, using the \
                         current one until it expires: {}",
                        e.message
                    );
                    Ok(c.token.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forgets the token of `audience` (the API answered 401), so the next
    /// [`TokenSource::token`] fetches a new one.
    pub async fn invalidate(&self, audience: &str) {
        self.cache.lock().await.remove(audience);
    }

    async fn fetch(&self, audience: &str) -> Result<(Secret, Duration), PluginError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (req, who) = match &self.credential {
            Credential::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => {
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    self.endpoints.authority_host,
                    escape(tenant_id)
                );
                let body = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    escape(client_id),
                    escape(client_secret.expose()),
                    escape(&scope(audience)),
                );
                let req = Request::new(Method::POST, url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header("Accept", "application/json")
                    .body(body);
                (req, "Microsoft Entra ID")
            }
            Credential::ManagedIdentity { client_id } => {
                let mut url = format!(
                    "{}/metadata/identity/oauth2/token?api-version={IMDS_API_VERSION}&resource={}",
                    self.endpoints.imds_endpoint,
                    escape(audience)
                );
                if let Some(id) = client_id {
                    url.push_str("&client_id=");
                    url.push_str(&escape(id));
                }
                let req = Request::new(Method::GET, url).header("Metadata", "true");
                (req, "the managed identity endpoint (IMDS)")
            }
        };
        let resp = self.http.send(req).await.map_err(|e| {
            PluginError::retryable(format!("getting an access token from {who}: {e}"))
        })?;
        self.parse(resp, who)
    }

    fn parse(&self, resp: Response, who: &str) -> Result<(Secret, Duration), PluginError> {
        if (200..300).contains(&resp.status) {
            let t: TokenResponse = serde_json::from_slice(&resp.body).map_err(|e| {
                PluginError::permanent(format!(
                    "{who} answered {} with a body that is not a token response: {e}",
                    resp.status
                ))
            })?;
            if t.access_token.is_empty() {
                return Err(PluginError::permanent(format!(
                    "{who} answered without an access_token"
                )));
            }
            // A missing or unreadable lifetime: assume a short one and refresh soon.
            let secs = t
                .expires_in
                .as_ref()
                .and_then(NumOrString::seconds)
                .unwrap_or(300);
            return Ok((Secret(t.access_token), Duration::from_secs(secs)));
        }
        // Only the error code and description are quoted: never the request.
        let detail = match serde_json::from_slice::<ErrorResponse>(&resp.body) {
            Ok(e) if e.error.is_some() || e.error_description.is_some() => {
                let code = match &e.error {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                let desc = e.error_description.unwrap_or_default();
                let desc: String = desc.chars().take(retry::BODY_EXCERPT).collect();
                format!("HTTP {}: {code}: {desc}", resp.status)
            }
            _ => retry::describe(&resp),
        };
        let msg = format!("getting an access token from {who}: {detail}");
        let imds = matches!(self.credential, Credential::ManagedIdentity { .. });
        let retryable = match resp.status {
            408 | 429 | 500..=599 => true,
            // IMDS: identity not yet available / being updated.
            404 | 410 if imds => true,
            _ => false,
        };
        if retryable {
            let err = PluginError::retryable(msg);
            return Err(
                match retry::retry_after_ms(&resp.headers, std::time::SystemTime::now()) {
                    Some(ms) => err.with_retry_after(ms),
                    None => err,
                },
            );
        }
        Err(PluginError::permanent(msg))
    }
}

/// The OAuth scope for an audience (resource): `{audience}/.default`.
pub fn scope(audience: &str) -> String {
    format!("{audience}/.default")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keeps_the_audience_as_given() {
        assert_eq!(
            scope("https://monitor.azure.com/"),
            "https://monitor.azure.com//.default"
        );
        assert_eq!(
            scope("https://management.azure.com"),
            "https://management.azure.com/.default"
        );
    }

    #[test]
    fn escape_is_rfc3986() {
        assert_eq!(escape("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(escape("https://x/.default"), "https%3A%2F%2Fx%2F.default");
        assert_eq!(escape("p+s w&=%"), "p%2Bs%20w%26%3D%25");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let c = Credential::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn expires_in_as_number_or_string() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"3599"}"#).unwrap();
        assert_eq!(t.expires_in.unwrap().seconds(), Some(3599));
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":3599}"#).unwrap();
        assert_eq!(t.expires_in.unwrap().seconds(), Some(3599));
    }
}
