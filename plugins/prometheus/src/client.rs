//! Remote-write transport: the HTTP request the 1.0 spec prescribes, and what its
//! answer means for the host's retry loop.
//!
//! Every request is a `POST` of the Snappy-compressed `WriteRequest`
//! ([`crate::encode::remote_write`]) with the headers the spec requires
//! (<https://prometheus.io/docs/specs/remote_write_spec/>, "Protocol"):
//! `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0` and a `User-Agent` naming the sender,
//! plus the configured headers and credentials (Basic or Bearer).
//!
//! Retries ("Retries & Backoff" in the spec): 5xx and 429 are retryable and the
//! host backs off, honouring `Retry-After`; any other 4xx (a malformed or rejected
//! request: out-of-order samples, bad labels) is permanent and must not be retried;
//! a transport error is retryable. The classification is
//! [`tfo_plugin_common::retry::classify`] (which also retries 408).

use http::Method;
use tfo_plugin_api::PluginError;
use tfo_plugin_common::{
    auth,
    http::{ClientOptions, HttpClient, Request},
    retry, USER_AGENT,
};

use crate::{config::RemoteWriteConfig, encode::remote_write};

/// Sends write requests to one receiver.
#[derive(Debug, Clone)]
pub struct RemoteWriter {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
}

impl RemoteWriter {
    /// Prepares the client (CA store, credentials) for a validated config; nothing
    /// connects yet.
    pub fn new(cfg: &RemoteWriteConfig) -> Result<RemoteWriter, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
            user_agent: USER_AGENT.to_string(),
        })?;
        let mut headers: Vec<(String, String)> = vec![
            (
                "Content-Encoding".into(),
                remote_write::CONTENT_ENCODING.into(),
            ),
            ("Content-Type".into(), remote_write::CONTENT_TYPE.into()),
            (
                "X-Prometheus-Remote-Write-Version".into(),
                remote_write::VERSION.into(),
            ),
        ];
        headers.extend(cfg.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(b) = &cfg.basic_auth {
            headers.push((
                "Authorization".into(),
                auth::basic_auth_value(&b.username, &b.password),
            ));
        }
        if let Some(t) = &cfg.bearer_token {
            headers.push(("Authorization".into(), auth::bearer_auth_value(t)));
        }
        Ok(RemoteWriter {
            client,
            url: cfg.url.clone(),
            headers,
        })
    }

    /// The receiver URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP request carrying `body` (an [`remote_write::encode_body`] output).
    pub fn request(&self, body: Vec<u8>) -> Request {
        Request {
            method: Method::POST,
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            gzip: false,
        }
    }

    /// Sends one write request; `Ok` once the receiver answered 2xx.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), PluginError> {
        let resp = self
            .client
            .send(self.request(body))
            .await
            .map_err(retry::transport)?;
        retry::classify(&resp).map_err(|mut e| {
            e.message = format!("remote write to {}: {}", self.url, e.message).into();
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> RemoteWriteConfig {
        serde_json::from_str(json).unwrap()
    }

    fn header<'a>(r: &'a Request, name: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn request_carries_the_spec_headers_and_credentials() {
        let w = RemoteWriter::new(&cfg(
            r#"{"url": "http://h:9090/api/v1/write", "headers": {"X-Scope-OrgID": "t1"},
                "basic_auth": {"username": "Aladdin", "password": "open sesame"}}"#,
        ))
        .unwrap();
        let r = w.request(vec![1, 2, 3]);
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.url, "http://h:9090/api/v1/write");
        assert_eq!(r.body, [1, 2, 3]);
        assert!(!r.gzip);
        assert_eq!(header(&r, "content-encoding"), ["snappy"]);
        assert_eq!(header(&r, "content-type"), ["application/x-protobuf"]);
        assert_eq!(header(&r, "x-prometheus-remote-write-version"), ["0.1.0"]);
        assert_eq!(header(&r, "x-scope-orgid"), ["t1"]);
        assert_eq!(
            header(&r, "authorization"),
            ["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
        );
    }

    #[test]
    fn bearer_token() {
        let w =
            RemoteWriter::new(&cfg(r#"{"url": "https://h/w", "bearer_token": "abc"}"#)).unwrap();
        assert_eq!(header(&w.request(vec![]), "authorization"), ["Bearer abc"]);
    }
}
