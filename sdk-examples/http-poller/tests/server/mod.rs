//! A strict local HTTP/1.1 server for the tests: std `TcpListener` on a free
//! loopback port, one thread, one request per connection (`Connection: close`),
//! plain or HTTPS (rustls, with a CA and a server certificate made by rcgen).
//! It checks what the plugin sends (method `GET`, the configured path, no request
//! body), records every request, and answers from a script.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Answer(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Reads the request and never answers (the connection stays open until the
    /// server is dropped).
    Hang,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: &str) -> Reply {
        Reply::Answer(
            200,
            vec![("Content-Type", "application/json".into())],
            body.as_bytes().to_vec(),
        )
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
    violations: Vec<String>,
    hung: Vec<Box<dyn Conn>>,
}

/// A connection the server can answer on: plain TCP or TLS over it.
trait Conn: Read + Write + Send {
    /// Ends the answer: closes the writing side (with a TLS close_notify first).
    fn finish(&mut self);
}

impl Conn for TcpStream {
    fn finish(&mut self) {
        let _ = self.flush();
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

/// A CA and a server certificate for `127.0.0.1` and `localhost` signed by it.
pub struct Pki {
    /// The CA certificate, PEM (what a client trusts).
    pub ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl Pki {
    pub fn generate() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name
            .push(DnType::CommonName, "http-poller test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("self-signing the CA");
        let key = KeyPair::generate().expect("server key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params")
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("signing the server certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server certificate");
        Pki {
            ca_pem: ca_cert.pem(),
            config: Arc::new(config),
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    path: String,
    scheme: &'static str,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server that expects `GET <path>` and answers `default` unless a
    /// scripted reply is queued.
    pub fn start(path: &str, default: Reply) -> Server {
        Self::serve(path, default, None)
    }

    /// The same over HTTPS with `pki`'s server certificate.
    pub fn start_tls(path: &str, default: Reply, pki: &Pki) -> Server {
        Self::serve(path, default, Some(pki.config.clone()))
    }

    fn serve(path: &str, default: Reply, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new((
            Mutex::new(State {
                default: Some(default),
                ..State::default()
            }),
            Condvar::new(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, path) = (state.clone(), stop.clone(), path.to_string());
            std::thread::Builder::new()
                .name("test-http-srv".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(tcp) = conn else { continue };
                        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        match &tls {
                            None => handle(Box::new(tcp), &path, &state),
                            Some(cfg) => {
                                let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                                handle(Box::new(rustls::StreamOwned::new(conn, tcp)), &path, &state)
                            }
                        }
                    }
                })
                .unwrap()
        };
        Server {
            addr,
            path: path.to_string(),
            scheme,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of the expected path.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.addr, self.path)
    }

    /// Queues replies for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.0.lock().unwrap().script.extend(replies);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.0.lock().unwrap().requests.clone()
    }

    /// Waits (on a condition variable) until `n` requests arrived.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.0.lock().unwrap();
        while s.requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.state.1.wait_timeout(s, left).unwrap().0;
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let violations = std::mem::take(&mut self.state.0.lock().unwrap().violations);
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "requests the server refused: {violations:?}"
            );
        }
    }
}

fn handle(stream: Box<dyn Conn>, path: &str, state: &Arc<(Mutex<State>, Condvar)>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the wake-up connection of Drop, or a closed probe
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut problems = Vec::new();
    if method != "GET" {
        problems.push(format!("method {method}, expected GET"));
    }
    if target != path {
        problems.push(format!("target {target}, expected {path}"));
    }
    if version != "HTTP/1.1" {
        problems.push(format!("version {version}, expected HTTP/1.1"));
    }
    let has_body = headers
        .iter()
        .any(|(k, v)| (k == "content-length" && v != "0") || k == "transfer-encoding");
    if has_body {
        problems.push("a GET with a body".to_string());
    }
    let (m, c) = &**state;
    let reply = {
        let mut s = m.lock().unwrap();
        s.requests.push(Recorded {
            method,
            target,
            headers,
        });
        let reply = if problems.is_empty() {
            s.script
                .pop_front()
                .or_else(|| s.default.clone())
                .expect("a reply")
        } else {
            s.violations.extend(problems);
            Reply::Answer(400, vec![], b"refused by the test server".to_vec())
        };
        c.notify_all();
        reply
    };
    match reply {
        Reply::Hang => {
            m.lock().unwrap().hung.push(reader.into_inner());
        }
        Reply::Answer(status, extra, body) => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let stream = reader.get_mut();
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&body);
            stream.finish();
            // Wait for the client to close, so the close does not reset the
            // connection before the client read the answer.
            let _ = reader.read(&mut [0u8; 64]);
        }
    }
}
