//! The scrape endpoint: a small hyper HTTP/1.1 server on the instance's runtime.
//!
//! `GET` (or `HEAD`) on the configured path answers the current
//! [`Store`] in the format [`negotiate`] picks from the
//! `Accept` header (Prometheus asks for OpenMetrics first), gzip-compressed when the
//! scraper accepts gzip (Prometheus does). Other paths answer 404, other methods
//! 405.
//!
//! The socket is bound with `SO_REUSEADDR` and `SO_REUSEPORT`: the host upgrades a
//! plugin make-before-break, so the new instance binds the same port while the old
//! one still serves, and the kernel spreads connections between them until the old
//! one stops. Binding happens in `start` (never in `create`, which `tfo-agent
//! validate` also runs). [`ScrapeServer::stop`] ends the accept loop and every open
//! connection, so nothing of the plugin runs after `shutdown`.

use std::{
    io::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tfo_plugin_api::sdk::Context;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::{
    encode::text::{negotiate, Format},
    store::Store,
};

/// Binds the listening socket with `SO_REUSEADDR` + `SO_REUSEPORT`. Must run inside
/// the instance runtime (the listener registers with its reactor).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A running scrape endpoint.
#[derive(Debug)]
pub struct ScrapeServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ScrapeServer {
    /// Starts serving `store` at `path` on `listener`, the accept loop running on
    /// the instance runtime.
    pub fn start(
        ctx: &Context,
        listener: TcpListener,
        path: String,
        store: Arc<Mutex<Store>>,
    ) -> std::io::Result<ScrapeServer> {
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let task = ctx.spawn(accept_loop(listener, Arc::new(path), store, stop_rx));
        Ok(ScrapeServer {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (the real port when the config said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// False once the accept loop ended without being asked to.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops accepting, closes open connections and waits (at most `within`) for
    /// the loop to end; aborts it if it does not. Run inside the instance runtime.
    pub async fn stop(&mut self, within: Duration) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(within, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    path: Arc<String>,
    store: Arc<Mutex<Store>>,
    mut stop: watch::Receiver<bool>,
) {
    // Dropping the set at the end aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: do not spin, do not die.
                    tracing::warn!("scrape endpoint accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let path = path.clone();
        let store = store.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let resp = handle(&req, &path, &store);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("scrape connection: {e}");
            }
        });
    }
    connections.shutdown().await;
}

/// Answers one request (pure apart from reading the store; tested directly).
pub fn handle(
    req: &hyper::Request<Incoming>,
    path: &str,
    store: &Mutex<Store>,
) -> hyper::Response<Full<Bytes>> {
    respond(
        req.method(),
        req.uri().path(),
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
        req.headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
        path,
        store,
    )
}

/// The response for a request's method, path and headers.
pub fn respond(
    method: &Method,
    req_path: &str,
    accept: Option<&str>,
    accept_encoding: Option<&str>,
    path: &str,
    store: &Mutex<Store>,
) -> hyper::Response<Full<Bytes>> {
    if req_path != path {
        return plain(
            StatusCode::NOT_FOUND,
            format!("not found; metrics are at {path}\n"),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_string());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let format: Format = negotiate(accept);
    let text = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .render(format, Instant::now());
    let (body, gzipped) = if accepts_gzip(accept_encoding) {
        match gzip(text.as_bytes()) {
            Ok(z) => (z, true),
            Err(_) => (text.into_bytes(), false),
        }
    } else {
        (text.into_bytes(), false)
    };
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        body
    };
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if gzipped {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    r
}

fn plain(status: StatusCode, text: String) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// True when `Accept-Encoding` lists gzip (or `*`) with a non-zero q-value.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .next()
                .map_or(1.0, |q| q.trim().parse::<f64>().unwrap_or(0.0));
            (name == "gzip" || name == "*") && q > 0.0
        })
    })
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use http_body_util::BodyExt as _;

    use super::*;
    use crate::encode::{text, Family, FamilyMeta, FamilyType, Point, Value};

    fn store() -> Mutex<Store> {
        let mut s = Store::new(Duration::from_secs(60));
        s.update(
            &[Family {
                meta: FamilyMeta {
                    name: "up".into(),
                    kind: FamilyType::Gauge,
                    help: "Up.".into(),
                    unit: String::new(),
                },
                delta: false,
                points: vec![Point {
                    labels: vec![],
                    value: Value::Int(1),
                    start_unix_nano: 0,
                    time_unix_nano: 1,
                }],
            }],
            Instant::now(),
        );
        Mutex::new(s)
    }

    fn body(r: hyper::Response<Full<Bytes>>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn serves_text_by_default_and_openmetrics_on_request() {
        let s = store();
        let r = respond(&Method::GET, "/metrics", None, None, "/metrics", &s);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], text::TEXT_CONTENT_TYPE);
        assert_eq!(body(r), b"# HELP up Up.\n# TYPE up gauge\nup 1\n");

        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let r = respond(&Method::GET, "/metrics", Some(prom), None, "/metrics", &s);
        assert_eq!(r.headers()["content-type"], text::OPENMETRICS_CONTENT_TYPE);
        assert_eq!(body(r), b"# TYPE up gauge\n# HELP up Up.\nup 1\n# EOF\n");
    }

    #[test]
    fn gzip_when_accepted() {
        let s = store();
        let r = respond(
            &Method::GET,
            "/metrics",
            None,
            Some("gzip, deflate"),
            "/metrics",
            &s,
        );
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let z = body(r);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "# HELP up Up.\n# TYPE up gauge\nup 1\n");
        let r = respond(
            &Method::GET,
            "/metrics",
            None,
            Some("gzip;q=0"),
            "/metrics",
            &s,
        );
        assert!(r.headers().get("content-encoding").is_none());
    }

    #[test]
    fn wrong_path_and_method() {
        let s = store();
        let r = respond(&Method::GET, "/other", None, None, "/metrics", &s);
        assert_eq!(r.status(), 404);
        let r = respond(&Method::POST, "/metrics", None, None, "/metrics", &s);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET, HEAD");
        let r = respond(&Method::HEAD, "/metrics", None, None, "/metrics", &s);
        assert_eq!(r.status(), 200);
        assert!(body(r).is_empty());
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
