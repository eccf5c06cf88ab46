//! Transport: the write request of each API version, and what its answer means.
//!
//! - InfluxDB 1.x (<https://docs.influxdata.com/influxdb/v1/tools/api/#write-http-endpoint>):
//!   `POST <url>/write?db=<database>[&rp=<retention_policy>]&precision=<n|u|ms|s>`.
//!   Credentials go in an `Authorization: Basic` header (the docs also allow `u`/`p`
//!   query parameters; a header keeps the password out of proxy and server logs).
//! - InfluxDB 2.x (<https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite>):
//!   `POST <url>/api/v2/write?org=<organization>&bucket=<bucket>&precision=<ns|us|ms|s>`
//!   with `Authorization: Token <token>`.
//!
//! Both carry `Content-Type: text/plain; charset=utf-8` and, with `gzip` on (the
//! default), a gzip body with `Content-Encoding: gzip` (both versions accept it).
//!
//! Answers ("Troubleshoot issues writing data" pages of both versions):
//! - 204 (any 2xx): written;
//! - 400: the data was refused, at least in part ("partial write" in 1.x, which
//!   writes the valid points and names the first bad one; `dropped=N` when it says
//!   how many). Sending it again cannot help: [`Outcome::Rejected`], never retried;
//! - 401 / 403: credentials refused; 404: database (1.x) or bucket / organization
//!   (2.x) not found. The same request would fail again, and so would every other
//!   chunk: [`Outcome::Fatal`] (permanent);
//! - 413: body too large: [`Outcome::TooLarge`], the caller splits the chunk;
//! - 408, 429 and 5xx (503 included): retryable, with the server's `Retry-After`
//!   ([`tfo_plugin_common::retry::classify`]); transport errors: retryable;
//! - anything else: permanent.

use tfo_plugin_api::PluginError;
use tfo_plugin_common::{
    auth,
    http::{ClientOptions, HttpClient, Method, Request, Response},
    retry, USER_AGENT,
};

use crate::config::{ApiVersion, Config};

/// What one write request came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// All lines written.
    Written,
    /// The server refused the data (400): `written` lines made it anyway, as far as
    /// the answer tells.
    Rejected {
        /// The server's explanation.
        message: String,
        /// Lines the server says it wrote despite the error.
        written: u64,
    },
    /// 413: the body was too large for the server.
    TooLarge(String),
    /// Nothing can succeed until the configuration or the server changes (auth,
    /// missing database); permanent.
    Fatal(PluginError),
    /// Try the batch again later (the error carries any Retry-After).
    Retry(PluginError),
}

/// Sends line-protocol bodies to one InfluxDB (or compatible) server.
#[derive(Debug, Clone)]
pub struct Writer {
    client: HttpClient,
    api: ApiVersion,
    url: String,
    target: String,
    headers: Vec<(String, String)>,
    gzip: bool,
}

impl Writer {
    /// Prepares the client (CA store, credentials, URL) for a validated config;
    /// nothing connects yet.
    pub fn new(cfg: &Config) -> Result<Writer, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
            user_agent: USER_AGENT.to_string(),
        })?;
        let api = cfg.api();
        let base = cfg.url.trim_end_matches('/');
        let precision = cfg.precision.query_value(api);
        let mut headers = vec![(
            "Content-Type".to_string(),
            "text/plain; charset=utf-8".to_string(),
        )];
        let (url, target) = match api {
            ApiVersion::V1 => {
                let db = cfg.v1_database();
                let mut url = format!("{base}/write?db={}", query_escape(db));
                if !cfg.retention_policy.is_empty() {
                    url.push_str("&rp=");
                    url.push_str(&query_escape(&cfg.retention_policy));
                }
                url.push_str("&precision=");
                url.push_str(precision);
                if !cfg.username.is_empty() {
                    headers.push((
                        "Authorization".into(),
                        auth::basic_auth_value(&cfg.username, &cfg.password),
                    ));
                }
                (url, format!("database {db:?}"))
            }
            ApiVersion::V2 => {
                let url = format!(
                    "{base}/api/v2/write?org={}&bucket={}&precision={precision}",
                    query_escape(&cfg.organization),
                    query_escape(&cfg.bucket)
                );
                if !cfg.token.is_empty() {
                    headers.push(("Authorization".into(), format!("Token {}", cfg.token)));
                }
                (
                    url,
                    format!(
                        "bucket {:?} of organization {:?}",
                        cfg.bucket, cfg.organization
                    ),
                )
            }
        };
        headers.extend(cfg.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Writer {
            client,
            api,
            url,
            target,
            headers,
            gzip: cfg.gzip,
        })
    }

    /// The write URL, query included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request carrying `body` (uncompressed line protocol).
    pub fn request(&self, body: Vec<u8>) -> Request {
        Request {
            method: Method::POST,
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            gzip: self.gzip,
        }
    }

    /// Sends one body of `lines` lines.
    pub async fn write(&self, body: Vec<u8>, lines: u64) -> Outcome {
        match self.client.send(self.request(body)).await {
            Ok(resp) => self.outcome(&resp, lines),
            Err(e) => Outcome::Retry(retry::transport(format!("influxdb write: {e}"))),
        }
    }

    /// What an answer to a request of `lines` lines means (see the module docs).
    pub fn outcome(&self, resp: &Response, lines: u64) -> Outcome {
        let status = resp.status;
        if (200..300).contains(&status) {
            return Outcome::Written;
        }
        let said = server_message(resp);
        match status {
            400 => Outcome::Rejected {
                written: written_despite(&said, lines),
                message: format!("HTTP 400: {said}"),
            },
            401 | 403 => Outcome::Fatal(PluginError::permanent(format!(
                "influxdb refused the credentials for {} (HTTP {status}: {said}); check {}",
                self.target,
                match self.api {
                    ApiVersion::V1 => "username and password",
                    ApiVersion::V2 => "the token and its write permission on the bucket",
                }
            ))),
            404 => Outcome::Fatal(PluginError::permanent(format!(
                "influxdb: {} not found (HTTP 404: {said}); {}",
                self.target,
                match self.api {
                    ApiVersion::V1 => "create it (CREATE DATABASE) or fix `database`",
                    ApiVersion::V2 => "create it or fix `organization` / `bucket`",
                }
            ))),
            413 => Outcome::TooLarge(format!("HTTP 413: {said}")),
            _ => match retry::classify(resp) {
                Ok(()) => Outcome::Written,
                Err(mut e) => {
                    e.message = format!("influxdb write to {}: {}", self.url, e.message).into();
                    match e.kind {
                        tfo_plugin_api::ErrorKind::Retryable => Outcome::Retry(e),
                        _ => Outcome::Fatal(e),
                    }
                }
            },
        }
    }
}

/// The explanation in an error answer: `error` (1.x) or `message` (2.x) of a JSON
/// body, else the start of the body as text.
pub fn server_message(resp: &Response) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
        for key in ["error", "message"] {
            if let Some(s) = v.get(key).and_then(|m| m.as_str()) {
                return cut(s.trim());
            }
        }
    }
    let text = resp.text();
    let text = text.trim();
    if text.is_empty() {
        "no explanation in the answer".to_string()
    } else {
        cut(text)
    }
}

fn cut(s: &str) -> String {
    const MAX: usize = retry::BODY_EXCERPT;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Lines written despite a 400. InfluxDB 1.x writes what it can and answers
/// "partial write: ... dropped=N": N points refused at write time (type conflicts,
/// limits), plus each line it quotes as "unable to parse" (those are not in N, as
/// InfluxDB 1.6 answers). Without a `dropped=` count (2.x, other servers) nothing
/// is assumed written.
pub fn written_despite(message: &str, lines: u64) -> u64 {
    let Some(i) = message.rfind("dropped=") else {
        return 0;
    };
    let digits: String = message[i + "dropped=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let unparsable = message.matches("unable to parse").count() as u64;
    match digits.parse::<u64>() {
        Ok(d) => lines.saturating_sub(d).saturating_sub(unparsable),
        Err(_) => 0,
    }
}

/// Percent-encodes a query value (RFC 3986: everything but unreserved characters).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
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
    use tfo_plugin_api::ErrorKind;
    use tfo_plugin_common::http::HeaderMap;

    fn writer(json: &str) -> Writer {
        let c: Config = serde_json::from_str(json).unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        Writer::new(&c).unwrap()
    }

    fn header<'a>(r: &'a Request, name: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn v1_request() {
        let w = writer(
            r#"{"url": "http://h:8086/", "database": "my db&x", "retention_policy": "one_week",
                "username": "Aladdin", "password": "open sesame", "precision": "us"}"#,
        );
        let r = w.request(b"m v=1 1\n".to_vec());
        assert_eq!(r.method, Method::POST);
        assert_eq!(
            r.url,
            "http://h:8086/write?db=my%20db%26x&rp=one_week&precision=u"
        );
        assert!(r.gzip);
        assert_eq!(
            header(&r, "authorization"),
            ["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
        );
        assert_eq!(header(&r, "content-type"), ["text/plain; charset=utf-8"]);
        // No credentials, no header.
        let w = writer(r#"{"url": "http://h", "database": "d", "gzip": false}"#);
        let r = w.request(vec![]);
        assert!(header(&r, "authorization").is_empty());
        assert!(!r.gzip);
        assert_eq!(r.url, "http://h/write?db=d&precision=ns");
    }

    #[test]
    fn v2_request() {
        let w = writer(
            r#"{"url": "https://h/prefix", "version": 2, "organization": "my org", "bucket": "b/1",
                "token": "s3cr3t==", "precision": "ms", "headers": {"X-Extra": "1"}}"#,
        );
        let r = w.request(vec![]);
        assert_eq!(
            r.url,
            "https://h/prefix/api/v2/write?org=my%20org&bucket=b%2F1&precision=ms"
        );
        assert_eq!(header(&r, "authorization"), ["Token s3cr3t=="]);
        assert_eq!(header(&r, "x-extra"), ["1"]);
    }

    #[test]
    fn answers() {
        let w = writer(r#"{"url": "http://h", "database": "d"}"#);
        assert!(matches!(w.outcome(&resp(204, ""), 3), Outcome::Written));
        match w.outcome(
            &resp(400, r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"m\" is type integer, already exists as type float dropped=1"}"#),
            3,
        ) {
            Outcome::Rejected { message, written } => {
                assert_eq!(written, 2);
                assert!(message.contains("field type conflict"), "{message}");
            }
            o => panic!("{o:?}"),
        }
        match w.outcome(
            &resp(
                400,
                r#"{"code":"invalid","message":"unable to parse 'x': missing fields"}"#,
            ),
            3,
        ) {
            Outcome::Rejected { message, written } => {
                assert_eq!(written, 0);
                assert_eq!(message, "HTTP 400: unable to parse 'x': missing fields");
            }
            o => panic!("{o:?}"),
        }
        match w.outcome(&resp(404, r#"{"error":"database not found: \"d\""}"#), 3) {
            Outcome::Fatal(e) => {
                assert_eq!(e.kind, ErrorKind::Permanent);
                assert!(e.message.contains("database \"d\" not found"), "{e}");
                assert!(e.message.contains("CREATE DATABASE"), "{e}");
            }
            o => panic!("{o:?}"),
        }
        for s in [401, 403] {
            match w.outcome(&resp(s, "{\"error\":\"authorization failed\"}"), 1) {
                Outcome::Fatal(e) => {
                    assert_eq!(e.kind, ErrorKind::Permanent);
                    assert!(e.message.contains("credentials"), "{e}");
                }
                o => panic!("{o:?}"),
            }
        }
        assert!(matches!(w.outcome(&resp(413, ""), 3), Outcome::TooLarge(_)));
        for s in [408, 429, 500, 503] {
            assert!(
                matches!(w.outcome(&resp(s, ""), 1), Outcome::Retry(_)),
                "{s}"
            );
        }
        assert!(matches!(w.outcome(&resp(422, ""), 1), Outcome::Fatal(_)));
    }

    #[test]
    fn dropped_counts() {
        assert_eq!(written_despite("partial write: x dropped=2", 5), 3);
        assert_eq!(written_despite("partial write: x dropped=9", 5), 0);
        assert_eq!(written_despite("unable to parse", 5), 0);
        // InfluxDB 1.6's answer to one unparsable line among five.
        assert_eq!(
            written_despite(
                "partial write: unable to parse 'bad line': invalid field format dropped=0",
                5
            ),
            4
        );
        assert_eq!(written_despite("dropped=", 5), 0);
    }

    #[test]
    fn long_messages_are_cut() {
        let body = format!("{{\"error\":\"{}\"}}", "é".repeat(400));
        let m = server_message(&resp(400, &body));
        assert!(m.ends_with("...") && m.len() < 320, "{}", m.len());
        assert_eq!(
            server_message(&resp(500, "")),
            "no explanation in the answer"
        );
        assert_eq!(server_message(&resp(500, " plain ")), "plain");
    }
}
