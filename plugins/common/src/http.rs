//! The HTTP client every HTTP-speaking plugin uses.
//!
//! Why one shared client: TLS set-up, connection pooling, timeouts and gzip are easy
//! to get subtly wrong (verification switched off, a timeout that only covers the
//! connect, a body that is never read), so they are written and tested once here.
//!
//! - hyper 1 with hyper-util's pooled ("legacy") client, HTTP/1.1 and HTTP/2 (h2 is
//!   negotiated with ALPN on https);
//! - TLS by rustls with the `ring` provider; server certificates are verified by
//!   default against the system CA store (rustls-native-certs) plus, optionally, the
//!   PEM certificates of [`ClientOptions::ca_file`] (the system store is read on the
//!   first handshake, see [`tls_builder`]). `insecure_skip_verify` turns
//!   verification off (the handshake signatures are still checked) and should only
//!   be used against test systems;
//! - `http://` and `https://` URLs;
//! - [`Request::gzip`] compresses the body (flate2) and sets `Content-Encoding: gzip`;
//! - [`ClientOptions::timeout`] bounds the whole exchange: connect, TLS, sending the
//!   request and reading the full response body.
//!
//! The client spawns its connection tasks on the tokio runtime it is polled on, so
//! call [`HttpClient::send`] from the plugin instance's runtime (`ctx.block_on` or a
//! task started with `ctx.spawn`); the pool's connections die with that runtime.

use std::{
    error::Error as StdError,
    fmt,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The `http` crate's types this API uses, re-exported so a plugin needs no direct
/// dependency on it: `tfo_plugin_common::http::Method::POST`.
pub use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Largest response body [`HttpClient::send`] reads by default (64 MiB); a larger
/// one is a transport error instead of an unbounded allocation.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// How a plugin's HTTP client connects: timeout, trust and identification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bound on one whole exchange (connect, TLS, request, full response body).
    pub timeout: Duration,
    /// Extra PEM CA certificates trusted in addition to the system store (a private
    /// CA, a test server's CA).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Only for test systems: it removes the
    /// protection TLS exists for.
    pub insecure_skip_verify: bool,
    /// `User-Agent` sent when the request does not carry its own.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            ca_file: None,
            insecure_skip_verify: false,
            user_agent: crate::USER_AGENT.to_string(),
        }
    }
}

/// One HTTP request. The body is sent as is, or gzip-compressed when `gzip` is set.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Absolute `http://` or `https://` URL, including any query string.
    pub url: String,
    /// Extra headers, in order (a repeated name is sent repeatedly).
    pub headers: Vec<(String, String)>,
    /// Request body (empty for none).
    pub body: Vec<u8>,
    /// Compress the body with gzip and send `Content-Encoding: gzip`.
    pub gzip: bool,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            gzip: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Asks for a gzip-compressed body.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }
}

/// A complete HTTP response (status, headers, whole body). Whether it is a success
/// is for [`crate::retry::classify`] to say.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body, fully read.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced), for error messages and JSON APIs.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A pooled HTTP/HTTPS client; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    user_agent: HeaderValue,
    max_response_bytes: usize,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds a client: loads the system CA store and the extra CA file, and
    /// prepares the connection pool. Fails on an unreadable or empty CA file, a zero
    /// timeout or an invalid user agent; nothing connects yet.
    pub fn new(opts: &ClientOptions) -> Result<HttpClient, String> {
        if opts.timeout.is_zero() {
            return Err("timeout must be greater than 0".to_string());
        }
        let user_agent = HeaderValue::from_str(&opts.user_agent)
            .map_err(|_| format!("invalid user agent {:?}", opts.user_agent))?;
        let tls = tls_config(opts)?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(opts.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(HttpClient {
            client,
            timeout: opts.timeout,
            user_agent,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// Changes the largest response body accepted (default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// The timeout bounding each exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends a request and reads the whole response. `Err` is a transport error
    /// (bad URL, DNS, connect, TLS, timeout, broken connection, oversized body); any
    /// HTTP status, 4xx and 5xx included, is an `Ok` [`Response`].
    pub async fn send(&self, req: Request) -> Result<Response, String> {
        let url = req.url.clone();
        let request = self.build(req)?;
        let exchange = async {
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request to {url}: {}", chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, self.max_response_bytes)
                .collect()
                .await
                .map_err(|e| format!("reading the response from {url}: {}", chain(&*e)))?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_vec(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "request to {url}: timed out after {:?}",
                self.timeout
            )),
        }
    }

    fn build(&self, req: Request) -> Result<http::Request<Full<Bytes>>, String> {
        let uri: http::Uri = req
            .url
            .parse()
            .map_err(|e| format!("invalid URL {:?}: {e}", req.url))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "invalid URL {:?}: scheme must be http or https",
                    req.url
                ))
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("invalid URL {:?}: no host", req.url));
        }
        let mut builder = http::Request::builder().method(req.method).uri(uri);
        let mut has_user_agent = false;
        {
            let headers = builder
                .headers_mut()
                .ok_or_else(|| "invalid request".to_string())?;
            for (name, value) in &req.headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("invalid header name {name:?}"))?;
                let value = HeaderValue::from_str(value)
                    .map_err(|_| format!("invalid value for header {name}"))?;
                has_user_agent |= name == header::USER_AGENT;
                headers.append(name, value);
            }
            if !has_user_agent {
                headers.insert(header::USER_AGENT, self.user_agent.clone());
            }
            if req.gzip {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
        }
        let body = if req.gzip {
            gzip(&req.body).map_err(|e| format!("compressing the request body: {e}"))?
        } else {
            req.body
        };
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("invalid request: {e}"))
    }
}

/// gzip-compresses `data` (default level).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

/// Reads every PEM certificate in `path`; an unreadable file, a malformed PEM
/// section or a file without certificates is an error naming the file.
pub fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("reading CA file {}: {e}", path.display()))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

fn tls_config(opts: &ClientOptions) -> Result<ClientConfig, String> {
    Ok(tls_builder(opts.ca_file.as_deref(), opts.insecure_skip_verify)?.with_no_client_auth())
}

/// The rustls client set-up every plugin uses (HTTP here, MQTT over TLS...): the
/// `ring` provider, server certificates verified against the system CA store plus
/// an optional PEM `ca_file`, or, with `insecure_skip_verify`, any certificate (the
/// handshake signatures are still checked). The caller adds client authentication.
///
/// The system CA store is read on the first handshake, not here (`LazyWebPki`):
/// reading it means opening and parsing ~150 files, and at start every plugin with
/// an HTTP client did it (2,600 file opens for the 25 plugins of the start-up
/// benchmark) although sinks on `http://` or not yet sending never need it. The
/// `ca_file` is read and checked here, so a bad one is still refused at `create`.
pub fn tls_builder(
    ca_file: Option<&Path>,
    insecure_skip_verify: bool,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let trust = if insecure_skip_verify {
        Trust::Any
    } else {
        Trust::WebPki(LazyWebPki::new(ca_file)?)
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier { provider, trust })))
}

/// The system CA store of this process (this plugin: each plugin is its own code
/// image), read once, on first use.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("loading system CA certificates: {e}");
        }
        let (_added, ignored) = roots.add_parsable_certificates(native.certs);
        if ignored > 0 {
            tracing::debug!(ignored, "unusable system CA certificates ignored");
        }
        roots
    })
}

/// How the server's certificate is checked. The handshake signatures are always
/// checked with the provider's algorithms, so the connection is at least consistent.
#[derive(Debug)]
struct ServerVerifier {
    provider: Arc<CryptoProvider>,
    trust: Trust,
}

#[derive(Debug)]
enum Trust {
    /// `insecure_skip_verify`: any certificate chain and name.
    Any,
    /// The standard verification, against the system CA store and `ca_file`.
    WebPki(LazyWebPki),
}

/// rustls's standard verifier ([`WebPkiServerVerifier`]: chain to a trusted root,
/// name, validity, revocation as configured) over the system CA store plus the
/// `ca_file` certificates, built on the first certificate to verify. Only *when*
/// the trust store is read changes; every verification is the standard one.
#[derive(Debug)]
struct LazyWebPki {
    extra: Vec<CertificateDer<'static>>,
    verifier: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyWebPki {
    /// Reads and checks `ca_file` now (an unreadable file, or one without a usable
    /// CA certificate, is an error at set-up, as before).
    fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        let mut extra = Vec::new();
        if let Some(path) = ca_file {
            let mut check = RootCertStore::empty();
            for cert in load_pem_certs(path)? {
                check
                    .add(cert.clone())
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                extra.push(cert);
            }
        }
        Ok(LazyWebPki {
            extra,
            verifier: OnceLock::new(),
        })
    }

    fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                let mut roots = system_roots().clone();
                for cert in &self.extra {
                    roots.add(cert.clone()).map_err(|e| e.to_string())?;
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("no certificate to trust: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            Trust::Any => Ok(ServerCertVerified::assertion()),
            Trust::WebPki(w) => w.verifier(&self.provider)?.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error and its sources, `a: b: c` (hyper's top-level errors alone say little,
/// e.g. "client error (Connect)").
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> HttpClient {
        HttpClient::new(&ClientOptions::default()).unwrap()
    }

    #[test]
    fn the_system_store_is_read_on_first_verification_only() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = ServerVerifier {
            provider,
            trust: Trust::WebPki(LazyWebPki::new(None).unwrap()),
        };
        let Trust::WebPki(lazy) = &v.trust else {
            unreachable!("built as WebPki")
        };
        assert!(
            lazy.verifier.get().is_none(),
            "nothing read when the client is built"
        );
        // An unknown certificate is refused by the standard verifier, built now.
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let name = ServerName::try_from("example.com").unwrap();
        assert!(v
            .verify_server_cert(&junk, &[], &name, &[], UnixTime::now())
            .is_err());
        assert!(lazy.verifier.get().is_some());
    }

    #[test]
    fn defaults() {
        let o = ClientOptions::default();
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.ca_file, None);
        assert!(!o.insecure_skip_verify);
        assert_eq!(
            o.user_agent,
            format!("tfo-agent/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn rejects_bad_options() {
        let e = HttpClient::new(&ClientOptions {
            timeout: Duration::ZERO,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("timeout"), "{e}");
        let e = HttpClient::new(&ClientOptions {
            user_agent: "bad\nagent".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("user agent"), "{e}");
        let e = HttpClient::new(&ClientOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = std::env::temp_dir().join(format!("tfo-common-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = load_pem_certs(&path).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn builds_requests_with_defaults_and_gzip() {
        let c = client();
        let req = c
            .build(
                Request::new(Method::POST, "http://example.test:8080/a?b=c")
                    .header("X-One", "1")
                    .body(b"hello hello hello".to_vec())
                    .gzip(true),
            )
            .unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/a?b=c");
        assert_eq!(req.headers()["x-one"], "1");
        assert_eq!(req.headers()["user-agent"], crate::USER_AGENT);
        assert_eq!(req.headers()["content-encoding"], "gzip");

        // A request's own User-Agent wins.
        let req = c
            .build(Request::new(Method::GET, "https://h/").header("User-Agent", "x/1"))
            .unwrap();
        assert_eq!(req.headers().get_all("user-agent").iter().count(), 1);
        assert_eq!(req.headers()["user-agent"], "x/1");
    }

    #[test]
    fn rejects_bad_urls_and_headers() {
        let c = client();
        for url in ["ftp://h/", "not a url", "/relative", "http:///x"] {
            assert!(c.build(Request::new(Method::GET, url)).is_err(), "{url}");
        }
        assert!(c
            .build(Request::new(Method::GET, "http://h/").header("bad name", "v"))
            .is_err());
        assert!(c
            .build(Request::new(Method::GET, "http://h/").header("n", "bad\nvalue"))
            .is_err());
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read;
        let data = b"some text some text some text".repeat(10);
        let z = gzip(&data).unwrap();
        assert!(z.len() < data.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn connection_refused_is_a_transport_error() {
        // Bind then drop a listener, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(client().send(Request::new(
                Method::GET,
                format!("http://127.0.0.1:{port}/"),
            )))
            .unwrap_err();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
