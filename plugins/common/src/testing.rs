//! A strict local HTTP/HTTPS server for plugin contract tests (cargo feature
//! `testing`; plugins enable it in their `[dev-dependencies]` only).
//!
//! Where no real backend can run on the test machine, a plugin is tested against
//! this server instead: it checks nothing by itself, but records every request
//! exactly as it arrived (method, path and query, headers, body with any gzip
//! `Content-Encoding` undone, the raw body too) so the test can check the wire
//! format independently, and it answers from a queue of scripted responses
//! (status, headers, body; 200 with an empty body once the queue is empty), so a
//! test can play the documented error answers: 429 with `Retry-After`, 400, 500,
//! partial failures.
//!
//! Strictness: a body declared `Content-Encoding: gzip` that is not valid gzip is
//! answered with 400 (and recorded with [`RecordedRequest::decode_error`]), like a
//! real backend would.
//!
//! [`TestServer::https`] generates a fresh CA and a server certificate for
//! `127.0.0.1` and `localhost` (rcgen) and writes the CA to a PEM file,
//! [`TestServer::ca_file`], for `ClientOptions::ca_file`: a client without it must
//! fail verification, which is how tests prove TLS verification is on. HTTP/1.1 and
//! HTTP/2 (ALPN) are both served.
//!
//! The server runs on its own thread and tokio runtime, so tests can drive a plugin
//! through its synchronous entry points; dropping the server stops it and joins the
//! thread. [`TestServer::wait_for_requests`] blocks on a condition variable until
//! requests arrive (no sleeping).

use std::{
    collections::VecDeque,
    convert::Infallible,
    io::Read as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// An answer the server gives to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl ScriptedResponse {
    /// A response with this status, no headers and an empty body.
    pub fn status(status: u16) -> Self {
        ScriptedResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method, e.g. `POST`.
    pub method: Method,
    /// Path and query, e.g. `/api/v1/write?x=1`.
    pub path: String,
    /// HTTP version the client used.
    pub version: Version,
    /// Headers as received.
    pub headers: HeaderMap,
    /// Body with a gzip `Content-Encoding` undone (other encodings are left as
    /// they are, e.g. snappy).
    pub body: Vec<u8>,
    /// Body as it came over the wire.
    pub raw_body: Vec<u8>,
    /// Why the body could not be decoded (the request was answered with 400).
    pub decode_error: Option<String>,
}

impl RecordedRequest {
    /// A header's value as text (the first one when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    script: VecDeque<ScriptedResponse>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A local HTTP or HTTPS server recording requests and answering from a script.
pub struct TestServer {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    ca_file: Option<PathBuf>,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a plain HTTP server on a free loopback port.
    pub fn http() -> TestServer {
        Self::start(None)
    }

    /// Starts an HTTPS server on a free loopback port, with a freshly generated CA
    /// (see [`TestServer::ca_file`]) and a certificate for `127.0.0.1` and
    /// `localhost`.
    pub fn https() -> TestServer {
        let pki = Pki::generate();
        Self::start(Some(pki))
    }

    fn start(pki: Option<Pki>) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("tfo-test-server-")
            .tempdir()
            .expect("temp dir for the test server");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let tls = pki.is_some();
        let (ca_pem, ca_file, acceptor) = match pki {
            Some(p) => {
                let path = dir.path().join("ca.pem");
                std::fs::write(&path, &p.ca_pem).expect("writing the CA file");
                let acceptor = p.acceptor();
                (Some(p.ca_pem), Some(path), Some(acceptor))
            }
            None => (None, None, None),
        };
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("test-server-{}", addr.port()))
                .spawn(move || serve(listener, acceptor, shared, stop_rx))
                .expect("spawning the test server thread")
        };
        TestServer {
            addr,
            tls,
            ca_pem,
            ca_file,
            _dir: dir,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The listening address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The URL of `path` on this server, by IP: `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme(), self.addr, path)
    }

    /// The URL of `path` by host name: `https://localhost:<port><path>`.
    pub fn url_localhost(&self, path: &str) -> String {
        format!("{}://localhost:{}{}", self.scheme(), self.addr.port(), path)
    }

    /// Path of the PEM file holding the CA that signed the server certificate.
    /// Panics on a plain HTTP server.
    pub fn ca_file(&self) -> &Path {
        self.ca_file
            .as_deref()
            .expect("ca_file: this test server is plain HTTP")
    }

    /// The CA certificate in PEM. Panics on a plain HTTP server.
    pub fn ca_pem(&self) -> &str {
        self.ca_pem
            .as_deref()
            .expect("ca_pem: this test server is plain HTTP")
    }

    /// Queues the answer to the next unanswered request (answers are used in
    /// order; once the queue is empty the server answers 200 with an empty body).
    pub fn push_response(&self, resp: ScriptedResponse) {
        self.shared.lock().script.push_back(resp);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Blocks until at least `n` requests have arrived and returns all of them;
    /// panics after `timeout` with what did arrive.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "waited {timeout:?} for {n} request(s), got {}: {:?}",
                    state.requests.len(),
                    state
                        .requests
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect::<Vec<_>>()
                );
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.requests.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A CA and a server certificate signed by it.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    fn generate() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name
            .push(DnType::CommonName, "tfo-agent test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("self-signing the CA");

        let leaf_key = KeyPair::generate().expect("server key");
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        leaf.distinguished_name
            .push(DnType::CommonName, "tfo-agent test server");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("signing the server certificate");
        Pki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            leaf_der: leaf_cert.der().clone(),
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf_der.clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(self.leaf_key.clone_key()),
            )
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

fn serve(
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test server runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            let shared = shared.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, shared.clone()));
                let builder = auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        // A failed handshake (e.g. a client that does not trust
                        // the CA) just closes the connection.
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
}

async fn handle(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let raw_body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => {
            return Ok(plain(400, format!("reading the body: {e}")));
        }
    };
    let encoding = parts
        .headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let (body, decode_error) = match encoding.as_deref() {
        Some("gzip") => {
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(&raw_body[..]).read_to_end(&mut out) {
                Ok(_) => (out, None),
                Err(e) => (Vec::new(), Some(format!("invalid gzip body: {e}"))),
            }
        }
        _ => (raw_body.clone(), None),
    };
    let recorded = RecordedRequest {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string()),
        version: parts.version,
        headers: parts.headers,
        body,
        raw_body,
        decode_error: decode_error.clone(),
    };
    let scripted = {
        let mut state = shared.lock();
        state.requests.push(recorded);
        shared.arrived.notify_all();
        if decode_error.is_some() {
            None
        } else {
            Some(
                state
                    .script
                    .pop_front()
                    .unwrap_or_else(|| ScriptedResponse::status(200)),
            )
        }
    };
    let Some(scripted) = scripted else {
        return Ok(plain(400, decode_error.unwrap_or_default()));
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(scripted.body)));
    *resp.status_mut() = http::StatusCode::from_u16(scripted.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in scripted.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

fn plain(status: u16, text: String) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    resp
}
