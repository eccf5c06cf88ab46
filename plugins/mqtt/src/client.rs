//! The MQTT connection: one rumqttc client per instance, its event loop running as a
//! background task on the instance runtime, shared by the sink (publishing) and the
//! source (subscriptions).
//!
//! Protocol: MQTT 3.1.1 (OASIS Standard,
//! <https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html>), in
//! particular §3.1 CONNECT (clean session, keep alive, user name and password),
//! §3.2 CONNACK return codes, §3.3-3.7 PUBLISH and its QoS 1/2 acknowledgements,
//! §4.4 "Message delivery retry" (unacknowledged PUBLISH and PUBREL packets are
//! resent when a session resumes) and §4.7 topic names and filters.
//!
//! ## Delivery of published messages
//! `export` queues its messages with the rumqttc client and waits, up to
//! `publish_timeout`, until the broker acknowledged each one: PUBACK for QoS 1,
//! PUBCOMP for QoS 2 (QoS 0 counts once the message is written to the connection).
//! Only then does it return `Ok`. rumqttc gives a QoS 1/2 publish its packet id
//! when the event loop takes it from the request channel, and reports that as
//! `Outgoing::Publish(pkid)`; requests leave the channel in the order they were
//! queued, so the event loop task matches each report to the oldest message still
//! waiting for an id, then each PUBACK/PUBCOMP to its message by packet id. A report
//! whose packet id is already known is a retransmission after a reconnect (§4.4).
//!
//! When the connection fails, every export waiting for acknowledgements fails at once
//! with a retryable error (the host keeps the batch and sends it again later), and
//! an export made while the broker is unreachable fails immediately. With a
//! persistent session (`clean_session: false`, the default) rumqttc also resends
//! the unacknowledged messages on reconnection, as MQTT requires, so a message may
//! arrive twice: delivery is at least once. If the broker has lost the session
//! (`session_present` = 0), nothing old is resent and only the host's retry
//! delivers the batch.
//!
//! ## Reconnection
//! After a failure the event loop waits `reconnect_min_backoff`, doubling up to
//! `reconnect_max_backoff` (±20 % jitter) on each further failure, and resets after
//! a successful CONNACK. On the first connection of an instance, and whenever the
//! broker did not keep the session, the subscriptions are (re)sent; with a kept
//! session the broker already has them and delivers what it queued meanwhile.
//!
//! ## Ingest
//! Each PUBLISH received is matched to the first subscription whose filter matches
//! its topic, decoded (`decode`), and pushed to the host with `emit`, one batch per
//! message. rumqttc acknowledges QoS 1/2 messages as it reads them; a message the
//! host cannot take (`EmitStatus::Full` or `Closed`) is dropped and counted, and a
//! malformed one is counted and logged at debug level.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tfo_plugin_api::{prelude::*, Batch, EmitStatus};
use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
};

use crate::{
    config::{Settings, Subscription, MQTT_MAX_PACKET},
    decode::decode,
    encode::Message,
};

/// Room in the request channel beyond the publish window (subscribe, disconnect).
const CHANNEL_SPARE: usize = 16;

/// State of the link to the broker, as `start` and `health` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The first connection attempt has not finished.
    Connecting,
    /// Connected (CONNACK received).
    Up,
    /// Not connected; the last error, and whether retrying cannot help (refused
    /// credentials, an untrusted certificate).
    Down {
        /// What failed.
        error: String,
        /// True for refusals that need a config change.
        permanent: bool,
    },
}

/// Counters, shown in health and logged at shutdown.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received on subscriptions.
    pub received: AtomicU64,
    /// Points pushed to the host.
    pub emitted_points: AtomicU64,
    /// Points the host did not take (`Full` / `Closed`).
    pub dropped_points: AtomicU64,
    /// Messages that could not be decoded.
    pub malformed: AtomicU64,
    /// Messages on a topic no subscription matches (left over from an older
    /// subscription of the same persistent session).
    pub unmatched: AtomicU64,
    /// Messages acknowledged by the broker (or written, QoS 0).
    pub published: AtomicU64,
    /// Successful connections.
    pub connects: AtomicU64,
}

/// Completion of one export: how many messages still wait for an acknowledgement,
/// or why the export failed.
struct Waiter {
    state: Mutex<(usize, Option<String>)>,
    notify: Notify,
}

impl Waiter {
    fn new(n: usize) -> Self {
        Waiter {
            state: Mutex::new((n, None)),
            notify: Notify::new(),
        }
    }
    fn lock(&self) -> MutexGuard<'_, (usize, Option<String>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn ack(&self) {
        let mut s = self.lock();
        s.0 = s.0.saturating_sub(1);
        if s.0 == 0 {
            self.notify.notify_waiters();
        }
    }
    fn fail(&self, why: &str) {
        let mut s = self.lock();
        if s.1.is_none() {
            s.1 = Some(why.to_string());
        }
        self.notify.notify_waiters();
    }
    fn error(&self) -> Option<String> {
        self.lock().1.clone()
    }
    fn remaining(&self) -> usize {
        self.lock().0
    }
    async fn wait(&self) -> Result<(), String> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if let Some(e) = &s.1 {
                    return Err(e.clone());
                }
                if s.0 == 0 {
                    return Ok(());
                }
            }
            notified.await;
        }
    }
}

/// One queued message of an export.
struct Tracker {
    waiter: Arc<Waiter>,
    qos: QoS,
}

/// Messages between `export` and the broker's acknowledgement.
#[derive(Default)]
struct Tracking {
    /// CONNACK received and no error since: exports may queue messages.
    connected: bool,
    /// Queued messages that have no packet id yet, oldest first.
    fifo: VecDeque<Tracker>,
    /// QoS 1/2 messages written and not yet acknowledged, by packet id.
    by_pkid: HashMap<u16, Tracker>,
}

impl Tracking {
    fn fail_all(&self, why: &str) {
        for t in self.fifo.iter().chain(self.by_pkid.values()) {
            t.waiter.fail(why);
        }
    }
}

/// State shared by the instance (export, health, shutdown) and the event loop task.
pub struct Shared {
    broker: String,
    track: Mutex<Tracking>,
    space: Notify,
    link: watch::Sender<Link>,
    /// Counters.
    pub stats: Stats,
}

impl Shared {
    fn track(&self) -> MutexGuard<'_, Tracking> {
        self.track.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current link state.
    pub fn link(&self) -> Link {
        self.link.borrow().clone()
    }

    /// `Outgoing::Publish(pkid)`: a queued message got its packet id (or, QoS 0,
    /// was written).
    fn sent(&self, pkid: u16) {
        let mut t = self.track();
        if pkid != 0 && t.by_pkid.contains_key(&pkid) {
            return; // a retransmission of a message already matched
        }
        if let Some(tr) = t.fifo.pop_front() {
            if pkid == 0 {
                tr.waiter.ack();
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            } else {
                t.by_pkid.insert(pkid, tr);
            }
        }
        drop(t);
        self.space.notify_waiters();
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for `pkid`.
    fn acked(&self, pkid: u16, qos: QoS) {
        let mut t = self.track();
        if t.by_pkid.get(&pkid).is_some_and(|tr| tr.qos == qos) {
            if let Some(tr) = t.by_pkid.remove(&pkid) {
                tr.waiter.ack();
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Pushes an ingested batch to the host.
pub type EmitFn = Arc<dyn Fn(Batch) -> EmitStatus + Send + Sync>;

/// The source side: subscriptions and where their data goes.
pub struct Ingest {
    /// Subscriptions in config order (the first matching filter decodes).
    pub subscriptions: Vec<Subscription>,
    /// The host's `emit`.
    pub emit: EmitFn,
}

/// A running connection: the client handle and the event loop task.
pub struct Connection {
    shared: Arc<Shared>,
    client: AsyncClient,
    window: usize,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

fn qos_of(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// rumqttc options from the validated settings.
fn options(s: &Settings) -> MqttOptions {
    let mut o = MqttOptions::new(s.client_id.clone(), s.broker.host.clone(), s.broker.port);
    // Validated: 0 or whole seconds >= 1 (rumqttc asserts it).
    o.set_keep_alive(s.keep_alive);
    // Validated: the client id is not empty (rumqttc asserts it).
    o.set_clean_session(s.clean_session);
    if let Some((u, p)) = &s.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    o.set_inflight(s.max_inflight.max(1));
    // rumqttc's 10 KiB default would break the connection on a larger message, and a
    // persistent session would redeliver it forever; the sink checks its own limit
    // (`max_message_bytes`) before queueing.
    o.set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET);
    if let Some(tls) = &s.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    o
}

impl Connection {
    /// Creates the client and spawns its event loop on the instance runtime. Nothing
    /// blocks: the first connection attempt runs in the background.
    pub fn spawn(ctx: &Context, s: &Settings, ingest: Option<Ingest>) -> Connection {
        let window = s.max_inflight.max(1) as usize;
        let (client, mut eventloop) = AsyncClient::new(options(s), window + CHANNEL_SPARE);
        let mut net = eventloop.network_options();
        net.set_connection_timeout(s.connect_timeout.as_secs().max(1));
        eventloop.set_network_options(net);
        let (link, _) = watch::channel(Link::Connecting);
        let shared = Arc::new(Shared {
            broker: s.broker.to_string(),
            track: Mutex::new(Tracking::default()),
            space: Notify::new(),
            link,
            stats: Stats::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let filters = ingest
            .as_ref()
            .map(|i| {
                i.subscriptions
                    .iter()
                    .map(|s| SubscribeFilter::new(s.topic.clone(), qos_of(s.qos)))
                    .collect()
            })
            .unwrap_or_default();
        let task = ctx.spawn(run(
            eventloop,
            client.clone(),
            shared.clone(),
            ingest,
            filters,
            stop_rx,
            (s.reconnect_min, s.reconnect_max),
        ));
        Connection {
            shared,
            client,
            window,
            stop,
            task: Some(task),
        }
    }

    /// State shared with the event loop (link state, counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Waits until the first connection attempt finished (or `within` passed) and
    /// returns the link state then.
    pub async fn first_outcome(&self, within: Duration) -> Link {
        let mut rx = self.shared.link.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(|l| *l != Link::Connecting)).await;
        self.shared.link()
    }

    /// Publishes `messages` and returns once the broker acknowledged all of them;
    /// any failure is retryable (the host keeps the batch).
    pub async fn publish(
        &self,
        messages: Vec<Message>,
        qos: u8,
        retain: bool,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let total = messages.len();
        if total == 0 {
            return Ok(());
        }
        let qos = qos_of(qos);
        let deadline = tokio::time::Instant::now() + timeout;
        let waiter = Arc::new(Waiter::new(total));
        let broker = &self.shared.broker;
        let timed_out = |waiter: &Waiter| {
            PluginError::retryable(format!(
                "MQTT broker {broker}: {} of {total} message(s) not acknowledged within {timeout:?}",
                waiter.remaining()
            ))
        };
        for msg in messages {
            loop {
                let space = self.shared.space.notified();
                tokio::pin!(space);
                space.as_mut().enable();
                {
                    let mut t = self.shared.track();
                    if let Some(e) = waiter.error() {
                        return Err(PluginError::retryable(e));
                    }
                    if !t.connected {
                        return Err(PluginError::retryable(self.not_connected()));
                    }
                    if t.fifo.len() < self.window {
                        t.fifo.push_back(Tracker {
                            waiter: waiter.clone(),
                            qos,
                        });
                        if let Err(e) = self.client.try_publish(msg.topic, qos, retain, msg.payload)
                        {
                            t.fifo.pop_back();
                            return Err(PluginError::retryable(format!(
                                "MQTT broker {broker}: cannot queue a message: {e}"
                            )));
                        }
                        break;
                    }
                }
                if tokio::time::timeout_at(deadline, space).await.is_err() {
                    return Err(timed_out(&waiter));
                }
            }
        }
        match tokio::time::timeout_at(deadline, waiter.wait()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PluginError::retryable(e)),
            Err(_) => Err(timed_out(&waiter)),
        }
    }

    fn not_connected(&self) -> String {
        match self.shared.link() {
            Link::Down { error, .. } => format!("not connected: {error}"),
            _ => format!("not connected to MQTT broker {} yet", self.shared.broker),
        }
    }

    /// Disconnects cleanly (the broker keeps a persistent session) and stops the
    /// event loop, aborting it if it does not stop within `within`.
    pub async fn shutdown(&mut self, within: Duration) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(within, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        let mut t = self.shared.track();
        t.connected = false;
        t.fail_all("the MQTT plugin instance is shutting down");
    }
}

/// Human text and permanence of a connection failure.
fn describe(e: &ConnectionError, broker: &str) -> (String, bool) {
    if let ConnectionError::ConnectionRefused(code) = e {
        let (why, permanent) = match code {
            ConnectReturnCode::BadUserNamePassword => (
                "bad user name or password (check `username` and `password`)",
                true,
            ),
            ConnectReturnCode::NotAuthorized => (
                "not authorized (check `username`, `password` and the broker's ACL)",
                true,
            ),
            ConnectReturnCode::BadClientId => {
                ("client identifier rejected (check `client_id`)", true)
            }
            ConnectReturnCode::RefusedProtocolVersion => {
                ("the broker does not speak MQTT 3.1.1", true)
            }
            ConnectReturnCode::ServiceUnavailable => ("server unavailable", false),
            ConnectReturnCode::Success => ("refused with return code 0", false),
        };
        return (
            format!("MQTT broker {broker} refused the connection: {why}"),
            permanent,
        );
    }
    let tls_error = find_rustls_error(e);
    if let Some(r) = tls_error {
        let permanent = matches!(
            r,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadCertificate
                        | rustls::AlertDescription::UnknownCA
                        | rustls::AlertDescription::CertificateRequired
                        | rustls::AlertDescription::CertificateUnknown
                        | rustls::AlertDescription::AccessDenied
                )
        );
        return (format!("TLS with MQTT broker {broker}: {r}"), permanent);
    }
    let permanent = matches!(e, ConnectionError::Tls(rumqttc::TlsError::DNSName(_)));
    (format!("MQTT broker {broker}: {e}"), permanent)
}

/// The rustls error somewhere in `e`'s source chain (rumqttc wraps it in I/O errors,
/// at different depths depending on when the broker refused the handshake).
fn find_rustls_error(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        if let Some(r) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `d` scaled by a factor in [0.8, 1.2).
fn jitter(d: Duration) -> Duration {
    let frac = (now_unix_nano() % 1000) as f64 / 1000.0;
    d.mul_f64(0.8 + 0.4 * frac)
}

/// What the event loop does with ingested messages.
struct IngestState {
    ingest: Ingest,
    last_full_warning: Option<Instant>,
    dropped_since_warning: u64,
}

impl IngestState {
    fn handle(&mut self, p: &Publish, stats: &Stats) {
        stats.received.fetch_add(1, Ordering::Relaxed);
        let topic = p.topic.as_str();
        let Some(sub) = self
            .ingest
            .subscriptions
            .iter()
            .find(|s| crate::config::topic_matches(&s.topic, topic))
        else {
            stats.unmatched.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(topic, "message on a topic no subscription matches, dropped");
            return;
        };
        let batch = match decode(sub, topic, &p.payload, now_unix_nano()) {
            Ok(b) => b,
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    topic,
                    bytes = p.payload.len(),
                    "malformed payload dropped: {e}"
                );
                return;
            }
        };
        let n = batch.item_count();
        // Counted before the call, so that whoever sees the batch in the host also
        // sees it counted; taken back if the host refuses it.
        stats.emitted_points.fetch_add(n, Ordering::Relaxed);
        match (self.ingest.emit)(batch) {
            EmitStatus::Accepted => {}
            status => {
                stats.emitted_points.fetch_sub(n, Ordering::Relaxed);
                stats.dropped_points.fetch_add(n, Ordering::Relaxed);
                self.dropped_since_warning += n;
                let due = self
                    .last_full_warning
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
                if due && status == EmitStatus::Full {
                    tracing::warn!(
                        dropped = self.dropped_since_warning,
                        "the agent's queue is full: ingested MQTT data dropped"
                    );
                    self.last_full_warning = Some(Instant::now());
                    self.dropped_since_warning = 0;
                }
            }
        }
    }
}

/// The event loop task.
async fn run(
    mut el: EventLoop,
    client: AsyncClient,
    shared: Arc<Shared>,
    ingest: Option<Ingest>,
    filters: Vec<SubscribeFilter>,
    mut stop: watch::Receiver<bool>,
    (min_backoff, max_backoff): (Duration, Duration),
) {
    let mut ingest = ingest.map(|ingest| IngestState {
        ingest,
        last_full_warning: None,
        dropped_since_warning: 0,
    });
    let broker = shared.broker.clone();
    let mut first_connection = true;
    let mut backoff = min_backoff;
    let mut failures_in_row = 0u32;
    loop {
        let connected = shared.track().connected;
        let stopping = *stop.borrow();
        if stopping && !connected {
            break;
        }
        let res = if stopping {
            // DISCONNECT is queued: poll until it is written (shutdown aborts the
            // task if that takes too long).
            el.poll().await
        } else {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() {
                        break; // the instance is gone
                    }
                    if connected {
                        let _ = client.try_disconnect();
                    }
                    continue;
                }
                r = el.poll() => r,
            }
        };
        match res {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                {
                    let mut t = shared.track();
                    t.connected = true;
                    if !ack.session_present {
                        // Nothing of the old session is resent: fail what waited
                        // for it, and forget reports that belong to it.
                        t.fail_all(&format!(
                            "MQTT broker {broker} did not keep the session; the batch will be sent again"
                        ));
                        t.fifo.clear();
                        t.by_pkid.clear();
                        el.state.events.retain(|e| {
                            !matches!(
                                e,
                                Event::Outgoing(Outgoing::Publish(_))
                                    | Event::Outgoing(Outgoing::AwaitAck(_))
                            )
                        });
                        el.state.collision = None;
                    }
                }
                shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                shared.link.send_replace(Link::Up);
                backoff = min_backoff;
                failures_in_row = 0;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to MQTT broker {broker}"
                );
                if !filters.is_empty() && (first_connection || !ack.session_present) {
                    if let Err(e) = client.try_subscribe_many(filters.clone()) {
                        tracing::error!("cannot queue the MQTT subscriptions: {e}");
                    }
                }
                first_connection = false;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match &mut ingest {
                Some(i) => i.handle(&p, &shared.stats),
                None => {
                    shared.stats.unmatched.fetch_add(1, Ordering::Relaxed);
                }
            },
            Ok(Event::Incoming(Packet::PubAck(a))) => shared.acked(a.pkid, QoS::AtLeastOnce),
            Ok(Event::Incoming(Packet::PubComp(c))) => shared.acked(c.pkid, QoS::ExactlyOnce),
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                let refused: Vec<&str> = s
                    .return_codes
                    .iter()
                    .zip(&filters)
                    .filter(|(c, _)| matches!(c, SubscribeReasonCode::Failure))
                    .map(|(_, f)| f.path.as_str())
                    .collect();
                if refused.is_empty() {
                    tracing::info!(
                        "subscribed to {} MQTT topic filter(s) on {broker}",
                        s.return_codes.len()
                    );
                } else {
                    tracing::error!("MQTT broker {broker} refused the subscription to {refused:?}");
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => shared.sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                if stopping {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if stopping {
                    break;
                }
                let (msg, permanent) = describe(&e, &broker);
                let was_connected = {
                    let mut t = shared.track();
                    let was = t.connected;
                    t.connected = false;
                    // Also drain what `export` queued after rumqttc's own clean-up,
                    // so that nothing queued before this point is sent on a new
                    // session without being failed here.
                    el.clean();
                    t.fail_all(&msg);
                    was
                };
                shared.link.send_replace(Link::Down {
                    error: msg.clone(),
                    permanent,
                });
                failures_in_row += 1;
                if was_connected {
                    tracing::warn!("connection lost: {msg}; reconnecting");
                } else if failures_in_row == 1 || failures_in_row.is_multiple_of(20) {
                    tracing::warn!(attempts = failures_in_row, "cannot connect: {msg}");
                } else {
                    tracing::debug!(attempts = failures_in_row, "cannot connect: {msg}");
                }
                let delay = jitter(backoff);
                backoff = (backoff * 2).min(max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    shared.track().connected = false;
    tracing::debug!("MQTT event loop for {broker} stopped");
}
