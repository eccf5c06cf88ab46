//! The HTTP/1 listener the push receivers share (the InfluxDB write API and
//! OTLP/HTTP): binding for make-before-break upgrades, a cap on open connections,
//! a header read timeout, a token-bucket rate limit, and a stop that lets
//! in-flight requests finish. Each receiver brings only its request handler.
//!
//! The listener is bound with `SO_REUSEADDR` and (on Unix) `SO_REUSEPORT`: when a
//! plugin is upgraded, its next generation binds the same port while the old one
//! still listens, so senders never see a refused connection.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tfo_plugin_api::EmitStatus;
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tracing::instrument::WithSubscriber as _;

/// A complete answer: receivers build their bodies in memory.
pub type Reply = Response<Full<Bytes>>;

/// How many connections and how slow a client may be.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once; more are closed on accept (0 = unlimited).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
}

/// The limits a receiver's config sets (`receiver.*` of the influxdb and otlp
/// plugins): body size, request rate, open connections, how long a request waits
/// for room in the agent's queue.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Largest body, as sent and decompressed.
    pub max_body: u64,
    /// Requests per second (0 = unlimited).
    pub max_requests_per_second: u32,
    /// Connections at once (0 = unlimited).
    pub max_connections: u32,
    /// How long a request waits for room while the agent's queue is full before it
    /// is answered 503 (`receiver.queue_wait`; zero answers at once).
    pub queue_wait: Duration,
}

/// Default `receiver.queue_wait`: long enough to ride out one slow remote-write
/// round trip, well below the 5-10 s request timeouts of Telegraf, the influx
/// clients and the OpenTelemetry exporters.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// First and largest pause between two asks while a request waits for room.
const ROOM_POLL_FIRST: Duration = Duration::from_millis(1);
const ROOM_POLL_MAX: Duration = Duration::from_millis(20);

/// Asks the agent whether it takes a batch now (`emit` of an empty batch takes
/// nothing) and, while the answer is `Full`, asks again with growing pauses until
/// `max_wait` has passed; returns the last answer.
///
/// Why wait instead of answering 503 at once: a sender that ignores `Retry-After`
/// (wrk, many scripts, some client libraries) would otherwise resend at once, and
/// every refused request still costs reading and dropping its body. A waiting
/// request is not read: TCP flow control slows the sender down, the way InfluxDB
/// itself slows writers, and vmagent and the OpenTelemetry Collector's blocking
/// queue do. `Closed` is returned at once.
pub async fn wait_for_room(ask: impl Fn() -> EmitStatus, max_wait: Duration) -> EmitStatus {
    let mut status = ask();
    if status != EmitStatus::Full || max_wait.is_zero() {
        return status;
    }
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut pause = ROOM_POLL_FIRST;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return status;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        status = ask();
        if status != EmitStatus::Full {
            return status;
        }
        pause = (pause * 2).min(ROOM_POLL_MAX);
    }
}

impl ReceiverLimits {
    /// The listener's part of them, with the receiver's header read timeout.
    pub fn server(&self, header_read_timeout: Duration) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections as usize,
            header_read_timeout,
        }
    }
}

/// A running listener (see the module documentation).
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    connections_refused: Arc<AtomicU64>,
}

impl HttpServer {
    /// Binds `addr` and answers every request with `handle`, on the current tokio
    /// runtime (must be called from within it). `name` prefixes the log lines.
    pub fn start<H, F>(
        name: &'static str,
        addr: SocketAddr,
        limits: ServerLimits,
        handle: H,
    ) -> Result<HttpServer, String>
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let listener = bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("reading the bound address: {e}"))?;
        let (stop, stopped) = watch::channel(false);
        let connections_refused = Arc::new(AtomicU64::new(0));
        let accept = Accept {
            name,
            limits,
            handle: Arc::new(handle),
            connections_refused: connections_refused.clone(),
        };
        let task = tokio::spawn(accept.run(listener, stopped).with_current_subscriber());
        Ok(HttpServer {
            local_addr,
            stop,
            task: Some(task),
            connections_refused,
        })
    }

    /// The bound address (the real port when the config said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections closed on accept because `max_connections` were open.
    pub fn connections_refused(&self) -> u64 {
        self.connections_refused.load(Ordering::Relaxed)
    }

    /// Closes the listener, lets in-flight requests finish for up to `deadline`,
    /// then aborts what is left. Idempotent.
    pub async fn stop(&mut self, deadline: Duration) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(deadline, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

/// Binds a listener with `SO_REUSEADDR`, `SO_REUSEPORT` (Unix) and `TCP_NODELAY`.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Make-before-break upgrades: the next instance binds while this one listens.
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

struct Accept<H> {
    name: &'static str,
    limits: ServerLimits,
    handle: Arc<H>,
    connections_refused: Arc<AtomicU64>,
}

impl<H, F> Accept<H>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    async fn run(self, listener: TcpListener, mut stopped: watch::Receiver<bool>) {
        let name = self.name;
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    // Count only connections still open.
                    while conns.try_join_next().is_some() {}
                    match accepted {
                        Ok((_stream, peer)) if self.limits.max_connections > 0 && conns.len() >= self.limits.max_connections => {
                            self.connections_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!("{name}: {} connections open, closing the one from {peer}", conns.len());
                        }
                        Ok((stream, _peer)) => {
                            let conn = self.serve(stream, stopped.clone());
                            conns.spawn(conn.with_current_subscriber());
                        }
                        Err(e) => {
                            // EMFILE and friends: back off a little instead of spinning.
                            tracing::warn!("{name}: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        // Connections saw the same signal and finish their in-flight requests.
        while conns.join_next().await.is_some() {}
    }

    fn serve(
        &self,
        stream: TcpStream,
        mut stopped: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (name, handle) = (self.name, self.handle.clone());
        let service = service_fn(move |req| {
            let reply = handle(req);
            async move { Ok::<_, Infallible>(reply.await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        async move {
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!("{name}: connection error: {e}");
                    }
                }
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
    }
}

/// A token bucket for `max_requests_per_second`: `rate` tokens a second, holding at
/// most `rate` (a burst of one second's worth).
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    state: std::sync::Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// `None` for 0 (unlimited).
    pub fn new(rate: u32) -> Option<RateLimit> {
        (rate > 0).then(|| RateLimit {
            rate: f64::from(rate),
            state: std::sync::Mutex::new((f64::from(rate), Instant::now())),
        })
    }

    /// Takes a token; false when none is left (answer 429).
    pub fn take(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = *g;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        let ok = tokens >= 1.0;
        *g = (if ok { tokens - 1.0 } else { tokens }, now);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        // A connection closed on accept may be reset before or after the request.
        let _ = s.write_all(req.as_bytes()).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    /// An `ask` answering `Full` `fulls` times, then `then`; counts its calls.
    fn answers(fulls: usize, then: EmitStatus) -> (Arc<AtomicU64>, impl Fn() -> EmitStatus) {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let ask = move || {
            let n = c.fetch_add(1, Ordering::Relaxed) as usize;
            if n < fulls {
                EmitStatus::Full
            } else {
                then
            }
        };
        (calls, ask)
    }

    #[tokio::test]
    async fn a_request_waits_for_room_then_gets_the_answer_of_the_last_ask() {
        // Room after three refusals: taken, after four asks.
        let (calls, ask) = answers(3, EmitStatus::Accepted);
        assert_eq!(
            wait_for_room(ask, Duration::from_secs(30)).await,
            EmitStatus::Accepted
        );
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        // Stopping while it waits: `Closed` at once, no more asks.
        let (calls, ask) = answers(1, EmitStatus::Closed);
        assert_eq!(
            wait_for_room(ask, Duration::from_secs(30)).await,
            EmitStatus::Closed
        );
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        // Never room: `Full` once the wait is over, having asked again meanwhile.
        let (calls, ask) = answers(usize::MAX, EmitStatus::Accepted);
        assert_eq!(
            wait_for_room(ask, Duration::from_millis(30)).await,
            EmitStatus::Full
        );
        assert!(calls.load(Ordering::Relaxed) > 1);
        // No wait configured: one ask.
        let (calls, ask) = answers(usize::MAX, EmitStatus::Accepted);
        assert_eq!(wait_for_room(ask, Duration::ZERO).await, EmitStatus::Full);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn serves_refuses_over_the_cap_and_stops() {
        let limits = ServerLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(5),
        };
        // "/hold" answers only once released, keeping its connection open.
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let release = Arc::new(tokio::sync::Notify::new());
        let released = release.clone();
        let mut server = HttpServer::start(
            "test",
            "127.0.0.1:0".parse().unwrap(),
            limits,
            move |req: Request<Incoming>| {
                let (entered_tx, released) = (entered_tx.clone(), released.clone());
                async move {
                    let path = req.uri().path().to_string();
                    if path == "/hold" {
                        entered_tx.send(()).unwrap();
                        released.notified().await;
                    }
                    Response::new(Full::new(Bytes::from(path)))
                }
            },
        )
        .unwrap();
        let addr = server.local_addr();
        assert!(get(addr, "/x").await.ends_with("/x"));
        let holder = tokio::spawn(async move { get(addr, "/hold").await });
        entered.recv().await.unwrap();
        // The only slot is taken: the next connection is closed on accept.
        assert_eq!(get(addr, "/x").await, "");
        assert_eq!(server.connections_refused(), 1);
        release.notify_one();
        assert!(holder.await.unwrap().ends_with("/hold"));
        server.stop(Duration::from_secs(5)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }

    #[test]
    fn the_rate_limit_allows_a_burst_of_one_second() {
        assert!(RateLimit::new(0).is_none());
        let r = RateLimit::new(3).unwrap();
        assert!(r.take() && r.take() && r.take());
        assert!(!r.take());
    }
}
