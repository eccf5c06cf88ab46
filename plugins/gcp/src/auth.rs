//! OAuth 2.0 access tokens for the Google APIs.
//!
//! Three sources, as Google's own client libraries offer them:
//! - **a service-account key file** ("Using OAuth 2.0 for Server to Server
//!   Applications", <https://developers.google.com/identity/protocols/oauth2/service-account#httprest>):
//!   a JWT with header `{"alg":"RS256","typ":"JWT","kid":<private_key_id>}` and claims
//!   `iss` (the account's `client_email`), `scope` (space-delimited), `aud` (the key
//!   file's `token_uri`), `iat` and `exp` (one hour later, the maximum), signed with
//!   RSASSA-PKCS1-v1_5 SHA-256 (RFC 7518 §3.3) by the key file's PKCS#8 private key
//!   (`ring`), is `POST`ed to `token_uri` as
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`
//!   (`application/x-www-form-urlencoded`, RFC 7523 §2.1); the answer is
//!   `{"access_token", "expires_in", "token_type": "Bearer"}`, or
//!   `{"error", "error_description"}` (RFC 6749 §5.2);
//! - **the GCE / GKE metadata server**
//!   (<https://cloud.google.com/compute/docs/access/authenticate-workloads#applications>):
//!   `GET /computeMetadata/v1/instance/service-accounts/default/token` with
//!   `Metadata-Flavor: Google`, answering the same JSON;
//! - **a ready access token**, used as is and never refreshed.
//!
//! Tokens are cached and fetched again [`REFRESH_MARGIN`] before they expire (Google's
//! libraries use a few minutes too, for clock skew and requests in flight). After an
//! API answers 401, [`TokenProvider::refresh`] drops the refused token so the caller
//! can retry once with a new one.
//!
//! Secrets (the private key, the assertion, access tokens) never appear in logs,
//! errors or `Debug` output: the types holding them print `<redacted>`.

use std::{
    fmt,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use ring::{
    rand::SystemRandom,
    signature::{RsaKeyPair, RSA_PKCS1_SHA256},
};
use rustls_pki_types::{pem::PemObject, PrivatePkcs8KeyDer};
use serde::Deserialize;
use tfo_plugin_api::PluginError;
use tfo_plugin_common::{
    http::{HttpClient, Method, Request, Response},
    retry,
};

use crate::config::{Secret, DEFAULT_TOKEN_URI};

/// A token is replaced this long before its expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Lifetime asked for in the JWT (`exp - iat`): one hour, Google's maximum.
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// The JWT bearer grant type (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A service account read from its JSON key file.
pub struct ServiceAccount {
    /// `client_email`: the JWT's issuer.
    pub client_email: String,
    /// `private_key_id`: the JWT header's `kid`, when present.
    pub private_key_id: Option<String>,
    /// `token_uri` (or the configured override): the JWT's audience and where it is
    /// exchanged.
    pub token_uri: String,
    /// `project_id`, the default project.
    pub project_id: Option<String>,
    key: RsaKeyPair,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    project_id: Option<String>,
}

impl ServiceAccount {
    /// Parses a key file's JSON and its private key; `token_url` overrides the file's
    /// `token_uri`. Error messages never quote the key.
    pub fn from_json(text: &str, token_url: Option<&str>) -> Result<ServiceAccount, String> {
        // serde_json's messages quote no input, only positions.
        let f: KeyFile = serde_json::from_str(text)
            .map_err(|e| format!("not a service-account key file (JSON): {e}"))?;
        if let Some(kind) = &f.kind {
            if kind != "service_account" {
                return Err(format!(
                    "key file type is {kind:?}; only \"service_account\" keys are supported"
                ));
            }
        }
        let client_email = f
            .client_email
            .filter(|s| !s.is_empty())
            .ok_or("the key file has no client_email")?;
        let pem = f
            .private_key
            .filter(|s| !s.is_empty())
            .ok_or("the key file has no private_key")?;
        let key = parse_private_key(&pem)?;
        let token_uri = token_url
            .map(str::to_string)
            .or(f.token_uri)
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        Ok(ServiceAccount {
            client_email,
            private_key_id: f.private_key_id.filter(|s| !s.is_empty()),
            token_uri,
            project_id: f.project_id.filter(|s| !s.is_empty()),
            key,
        })
    }

    /// The signed JWT assertion for `scopes`, issued at `now` (seconds since the Unix
    /// epoch).
    pub fn assertion(&self, scopes: &[String], now: u64) -> Result<String, String> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scopes.join(" "),
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the JWT assertion failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64.encode(sig)))
    }
}

/// Decodes a PKCS#8 PEM RSA private key (`-----BEGIN PRIVATE KEY-----`, the key
/// file's format).
pub fn parse_private_key(pem: &str) -> Result<RsaKeyPair, String> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "private_key is not a PKCS#8 PEM key (BEGIN PRIVATE KEY)".to_string())?;
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|e| format!("private_key is not a usable RSA key: {e}"))
}

/// Where access tokens come from.
#[derive(Debug)]
pub enum Credentials {
    /// A service-account key: signed JWT exchanged at its token endpoint.
    ServiceAccount(Box<ServiceAccount>),
    /// The metadata server's token URL.
    Metadata {
        /// Full URL of the token resource.
        token_url: String,
    },
    /// A fixed token.
    Static(Secret),
}

/// A cached access token.
struct Token {
    secret: String,
    /// When to stop using it (expiry minus the margin); `None`: never.
    refresh_at: Option<Instant>,
}

/// Obtains, caches and refreshes access tokens.
pub struct TokenProvider {
    credentials: Credentials,
    scopes: Vec<String>,
    client: HttpClient,
    cache: tokio::sync::Mutex<Option<Token>>,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The token endpoint's answer (RFC 6749 §5.1).
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<u64>,
    token_type: Option<String>,
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenProvider {
    /// A provider for `credentials`, fetching over `client`.
    pub fn new(credentials: Credentials, scopes: Vec<String>, client: HttpClient) -> Self {
        TokenProvider {
            credentials,
            scopes,
            client,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether a refused token can be replaced (false for a static token).
    pub fn can_refresh(&self) -> bool {
        !matches!(self.credentials, Credentials::Static(_))
    }

    /// A valid token: the cached one, or a new one when it is (nearly) expired.
    pub async fn token(&self) -> Result<String, PluginError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref() {
            if t.refresh_at.is_none_or(|at| Instant::now() < at) {
                return Ok(t.secret.clone());
            }
        }
        let fresh = self.fetch().await?;
        let secret = fresh.secret.clone();
        *cache = Some(fresh);
        Ok(secret)
    }

    /// Called after an API refused `refused` with 401: forgets it and returns a new
    /// token (unless another caller already replaced it).
    pub async fn refresh(&self, refused: &str) -> Result<String, PluginError> {
        {
            let mut cache = self.cache.lock().await;
            if cache.as_ref().is_some_and(|t| t.secret == refused) {
                *cache = None;
            }
        }
        self.token().await
    }

    async fn fetch(&self) -> Result<Token, PluginError> {
        match &self.credentials {
            Credentials::Static(s) => Ok(Token {
                secret: s.0.clone(),
                refresh_at: None,
            }),
            Credentials::ServiceAccount(sa) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let assertion = sa
                    .assertion(&self.scopes, now)
                    .map_err(PluginError::permanent)?;
                let body = format!(
                    "grant_type={}&assertion={}",
                    percent_encode(JWT_BEARER_GRANT),
                    percent_encode(&assertion)
                );
                let req = Request::new(Method::POST, sa.token_uri.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header("Accept", "application/json")
                    .body(body);
                let what = format!("token request to {}", sa.token_uri);
                self.exchange(req, &what).await
            }
            Credentials::Metadata { token_url } => {
                let req = Request::new(Method::GET, token_url.clone())
                    .header("Metadata-Flavor", "Google")
                    .header("Accept", "application/json");
                let what = format!("metadata server token request to {token_url}");
                self.exchange(req, &what).await
            }
        }
    }

    async fn exchange(&self, req: Request, what: &str) -> Result<Token, PluginError> {
        let started = Instant::now();
        let resp = self
            .client
            .send(req)
            .await
            .map_err(|e| retry::transport(format!("{what}: {e}")))?;
        if !(200..300).contains(&resp.status) {
            return Err(token_error(&resp, what));
        }
        // Parsed by hand: serde's type errors would quote field values.
        let v: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|_| PluginError::retryable(format!("{what}: the answer is not JSON")))?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let parsed = TokenResponse {
            access_token: text("access_token"),
            expires_in: v.get("expires_in").and_then(|x| {
                x.as_u64()
                    .or_else(|| x.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .or_else(|| x.as_str()?.trim().parse().ok())
            }),
            token_type: text("token_type"),
        };
        if let Some(tt) = &parsed.token_type {
            if !tt.eq_ignore_ascii_case("bearer") {
                return Err(PluginError::permanent(format!(
                    "{what}: unsupported token_type {tt:?} (expected Bearer)"
                )));
            }
        }
        let secret = parsed
            .access_token
            .filter(|t| !t.is_empty() && !t.bytes().any(|b| !(0x21..=0x7e).contains(&b)))
            .ok_or_else(|| {
                PluginError::retryable(format!("{what}: the answer has no usable access_token"))
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        tracing::debug!(
            "gcp: obtained an access token ({what}), valid for {}s",
            lifetime.as_secs()
        );
        Ok(Token {
            secret,
            refresh_at: Some(started + lifetime.saturating_sub(REFRESH_MARGIN)),
        })
    }
}

/// A refused token request: 400/401/403 (a bad key, a disabled account, a clock
/// far off) are permanent, 429 and 5xx retryable; the OAuth `error` and
/// `error_description` are quoted.
fn token_error(resp: &Response, what: &str) -> PluginError {
    let base = retry::classify(resp).expect_err("not a 2xx answer");
    let detail = match serde_json::from_slice::<OAuthError>(&resp.body) {
        Ok(OAuthError {
            error: Some(e),
            error_description,
        }) => match error_description {
            Some(d) => format!("{e}: {d}"),
            None => e,
        },
        _ => crate::client::google_error_message(resp).unwrap_or_else(|| retry::describe(resp)),
    };
    let mut e = PluginError::of(
        base.kind,
        format!("{what} refused: HTTP {}: {detail}", resp.status),
    );
    e.retry_after_ms = base.retry_after_ms;
    e
}

/// Percent-encodes everything but RFC 3986 unreserved characters (form values, log
/// ids in `logName`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(
            percent_encode(JWT_BEARER_GRANT),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        assert_eq!(percent_encode("a/b c~_.-"), "a%2Fb%20c~_.-");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn bad_keys_are_explained_without_quoting_them() {
        let e = ServiceAccount::from_json("not json SECRETSTUFF", None).unwrap_err();
        assert!(!e.contains("SECRETSTUFF"), "{e}");
        let e = ServiceAccount::from_json(
            r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nQUJDU0VDUkVU\n-----END PRIVATE KEY-----\n"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("not a usable RSA key"), "{e}");
        assert!(!e.contains("QUJDU0VDUkVU"), "{e}");
        let e = ServiceAccount::from_json(r#"{"type":"authorized_user"}"#, None).unwrap_err();
        assert!(e.contains("authorized_user"), "{e}");
        let e = ServiceAccount::from_json(
            r#"{"type":"service_account","client_email":"a@b","private_key":"garbage"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("PKCS#8"), "{e}");
    }
}
