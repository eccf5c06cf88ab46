//! One target's SNMP session over UDP (RFC 3417 §2: one message per datagram):
//! request/response matching, timeouts and retries, SNMPv3 engine discovery and
//! timeliness (RFC 3414 §4 and §3.2 step 7), authentication and privacy, and the
//! GET / GETNEXT walk / GETBULK walk operations built on them.
//!
//! Runs on the instance's tokio runtime. Datagrams that do not decode, carry
//! another request id, or fail authentication are ignored (and remembered for the
//! error message) instead of ending the request: a stray or forged packet must not
//! be able to make a healthy target look down, nor crash anything.

use std::{
    fmt,
    hash::{BuildHasher, Hasher},
    net::SocketAddr,
    time::Instant,
};

use tokio::net::UdpSocket;

use crate::{
    config::{Security, Target, V3User},
    encode::{self, CommunityVersion, MsgData, Oid, Pdu, UsmParams, Value},
    message::{self, Kind, ResponsePdu, V3Data},
    usm::{self, AuthProtocol},
};

/// Why a request or a walk failed; the text is what health and logs show.
#[derive(Clone, Debug, PartialEq)]
pub enum SnmpError {
    /// No valid response after every attempt.
    Timeout(String),
    /// Resolving, binding or sending failed, or the agent's host refused (ICMP).
    Network(String),
    /// The agent refused our credentials (USM reports, RFC 3414 §3.2).
    Auth(String),
    /// Encryption-related failure (a decryption error report, or a response that
    /// does not decrypt).
    Decryption(String),
    /// The agent answered with an error-status or broke the protocol.
    Agent(String),
}

impl fmt::Display for SnmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnmpError::Timeout(m) => write!(f, "timeout: {m}"),
            SnmpError::Network(m) => write!(f, "network error: {m}"),
            SnmpError::Auth(m) => write!(f, "authentication failure: {m}"),
            SnmpError::Decryption(m) => write!(f, "decryption error: {m}"),
            SnmpError::Agent(m) => write!(f, "agent error: {m}"),
        }
    }
}

impl SnmpError {
    /// True when the target as a whole is unusable (as opposed to one object or
    /// table the agent handles badly).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, SnmpError::Agent(_))
    }
}

/// Names of the error-status values (RFC 3416 §3).
pub fn error_status_name(s: u32) -> &'static str {
    match s {
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "unknown error-status",
    }
}

/// usmStats counters sent in Report PDUs (RFC 3414 §5, usmStats group).
const USM_STATS: &[u32] = &[1, 3, 6, 1, 6, 3, 15, 1, 1];

/// The agent's SNMP engine as learnt by discovery, and the keys localized to it.
#[derive(Clone, Debug)]
struct Engine {
    id: Vec<u8>,
    boots: u32,
    time: u32,
    /// When `time` was received: the engine's clock now is `time + elapsed`.
    at: Instant,
    auth_key: Option<Vec<u8>>,
    priv_key: Option<Vec<u8>>,
}

impl Engine {
    fn time_now(&self) -> u32 {
        let elapsed = self.at.elapsed().as_secs().min(u64::from(u32::MAX)) as u32;
        self.time.saturating_add(elapsed).min(i32::MAX as u32)
    }
}

/// Largest number of variables put in one GET request.
const GET_CHUNK: usize = 32;

/// Most variables one walk may return, against agents that loop.
pub const MAX_WALK_VARBINDS: usize = 200_000;

/// A session with one agent.
pub struct Session {
    target: Target,
    socket: Option<UdpSocket>,
    next_id: u32,
    salt: u64,
    engine: Option<Engine>,
    /// Requests put on the wire (every attempt counts), for diagnostics and tests.
    pub requests_sent: u64,
    /// Received datagrams that were ignored (undecodable, wrong id, bad MAC).
    pub ignored_datagrams: u64,
    /// Sockets created so far (a new one after a network error), for tests.
    pub sockets_created: u64,
    last_ignored: Option<String>,
    /// The receive buffer (room for the largest UDP payload), kept across
    /// requests: a fresh zeroed 64 KiB per request cost more than decoding the
    /// answer (the zeroing, and glibc consolidating its free lists on every free
    /// of it). Never zeroed: datagrams are received into its spare capacity, so
    /// only the pages answers actually reach become resident.
    recv_buf: Vec<u8>,
}

/// Size of the receive buffer: the largest UDP payload.
const RECV_BUF_LEN: usize = 65536;

/// A random 64-bit seed from the standard library's per-process random keys.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Session {
    /// A session; the socket is created on first use.
    pub fn new(target: Target) -> Self {
        let seed = random_u64();
        Session {
            target,
            socket: None,
            next_id: (seed as u32) & 0x3FFF_FFFF,
            salt: seed.rotate_left(17),
            engine: None,
            requests_sent: 0,
            ignored_datagrams: 0,
            sockets_created: 0,
            last_ignored: None,
            recv_buf: Vec::new(),
        }
    }

    /// The target's settings.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// True for SNMPv1 (no GETBULK, no Counter64).
    pub fn is_v1(&self) -> bool {
        matches!(self.target.security, Security::V1 { .. })
    }

    /// Closes the socket (a new one is made on the next request) and forgets the
    /// engine, e.g. after a network error.
    pub fn reset(&mut self) {
        self.socket = None;
        self.engine = None;
    }

    fn next_id(&mut self) -> i32 {
        self.next_id = (self.next_id + 1) & 0x7FFF_FFFF;
        if self.next_id == 0 {
            self.next_id = 1;
        }
        self.next_id as i32
    }

    async fn socket(&mut self) -> Result<&UdpSocket, SnmpError> {
        if self.socket.is_none() {
            let t = &self.target;
            let addr: SocketAddr = tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| SnmpError::Network(format!("cannot resolve {}: {e}", t.host)))?
                .next()
                .ok_or_else(|| SnmpError::Network(format!("{} resolves to no address", t.host)))?;
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let s = UdpSocket::bind(local)
                .await
                .map_err(|e| SnmpError::Network(format!("cannot bind a UDP socket: {e}")))?;
            // A connected socket only receives datagrams from the agent's address,
            // and reports ICMP port unreachable as an error on the next receive.
            s.connect(addr)
                .await
                .map_err(|e| SnmpError::Network(format!("cannot reach {addr}: {e}")))?;
            self.socket = Some(s);
            self.sockets_created += 1;
        }
        Ok(self.socket.as_ref().expect("just set"))
    }

    fn ignore(&mut self, why: String) {
        self.ignored_datagrams += 1;
        tracing::debug!(target_address = %self.target.address, "ignored datagram: {why}");
        self.last_ignored = Some(why);
    }

    fn timeout_error(&self, attempts: u32) -> SnmpError {
        let t = &self.target;
        let mut m = format!(
            "no response from {} after {attempts} attempt{} of {:?}",
            t.address,
            if attempts == 1 { "" } else { "s" },
            t.timeout
        );
        match &t.security {
            Security::V1 { .. } | Security::V2c { .. } => {
                m.push_str(" (wrong community, or agent unreachable)")
            }
            Security::V3(u) if u.privacy.is_some() => m.push_str(
                " (agent unreachable, or wrong priv_password: agents drop requests they cannot decrypt)",
            ),
            Security::V3(_) => m.push_str(" (agent unreachable)"),
        }
        if let Some(l) = &self.last_ignored {
            m.push_str(&format!("; last ignored datagram: {l}"));
        }
        SnmpError::Timeout(m)
    }

    /// Sends `build(id)`'s datagram and waits for a datagram `accept` takes, with the
    /// target's timeout and retries. `build` is called once per attempt with a
    /// fresh id; `accept` sees every id sent so far, so a late answer to an earlier
    /// attempt is as good as one to the last.
    async fn exchange<T>(
        &mut self,
        mut build: impl FnMut(&mut Self, i32) -> Result<Vec<u8>, SnmpError>,
        mut accept: impl FnMut(&mut Self, &[u8], &[i32]) -> Result<Option<T>, SnmpError>,
    ) -> Result<T, SnmpError> {
        let attempts = self.target.retries + 1;
        let timeout = self.target.timeout;
        let mut ids = Vec::with_capacity(attempts as usize);
        // Taken out of `self` for the duration (`build` and `accept` borrow the
        // session), put back on every way out.
        let mut buf = std::mem::take(&mut self.recv_buf);
        if buf.capacity() < RECV_BUF_LEN {
            buf = Vec::with_capacity(RECV_BUF_LEN);
        }
        let r = self
            .exchange_with(
                attempts,
                timeout,
                &mut ids,
                &mut buf,
                &mut build,
                &mut accept,
            )
            .await;
        self.recv_buf = buf;
        r
    }

    /// The loop of [`Session::exchange`], with its buffers passed in.
    async fn exchange_with<T>(
        &mut self,
        attempts: u32,
        timeout: std::time::Duration,
        ids: &mut Vec<i32>,
        buf: &mut Vec<u8>,
        build: &mut impl FnMut(&mut Self, i32) -> Result<Vec<u8>, SnmpError>,
        accept: &mut impl FnMut(&mut Self, &[u8], &[i32]) -> Result<Option<T>, SnmpError>,
    ) -> Result<T, SnmpError> {
        self.last_ignored = None;
        for _ in 0..attempts {
            let id = self.next_id();
            ids.push(id);
            let datagram = build(self, id)?;
            let sent = self.socket().await?.send(&datagram).await;
            if let Err(e) = sent {
                self.socket = None;
                return Err(SnmpError::Network(format!(
                    "cannot send to {}: {e}",
                    self.target.address
                )));
            }
            self.requests_sent += 1;
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let sock = self.socket.as_ref().expect("socket made above");
                // Into the spare capacity (at least RECV_BUF_LEN octets): a
                // larger datagram is cut there, as by a buffer of that size.
                buf.clear();
                let got = match tokio::time::timeout_at(deadline, sock.recv_buf(buf)).await {
                    Err(_) => break, // this attempt timed out
                    Ok(Err(e)) => {
                        self.socket = None;
                        return Err(SnmpError::Network(format!(
                            "receiving from {}: {e}",
                            self.target.address
                        )));
                    }
                    Ok(Ok(n)) => n,
                };
                if let Some(v) = accept(self, &buf[..got], ids)? {
                    return Ok(v);
                }
            }
        }
        Err(self.timeout_error(attempts))
    }

    /// Sends one request PDU (its request-id is set per attempt) and returns the
    /// Response PDU.
    pub async fn request(&mut self, pdu: &Pdu) -> Result<ResponsePdu, SnmpError> {
        match &self.target.security {
            Security::V1 { .. } => self.community_request(CommunityVersion::V1, pdu).await,
            Security::V2c { .. } => self.community_request(CommunityVersion::V2c, pdu).await,
            Security::V3(user) => {
                let user = user.clone();
                self.v3_request(&user, pdu).await
            }
        }
    }

    /// The community of a v1 / v2c target (empty for v3, never asked).
    fn community(&self) -> &[u8] {
        match &self.target.security {
            Security::V1 { community } | Security::V2c { community } => community,
            Security::V3(_) => &[],
        }
    }

    async fn community_request(
        &mut self,
        version: CommunityVersion,
        pdu: &Pdu,
    ) -> Result<ResponsePdu, SnmpError> {
        let want_version = match version {
            CommunityVersion::V1 => 0,
            CommunityVersion::V2c => 1,
        };
        self.exchange(
            |s, id| {
                Ok(encode::community_message_with_id(
                    version,
                    s.community(),
                    pdu,
                    id,
                ))
            },
            |s, datagram, ids| {
                let m = match message::decode_community(datagram) {
                    Ok(m) => m,
                    Err(e) => {
                        s.ignore(e.0);
                        return Ok(None);
                    }
                };
                if m.version != want_version || m.community != s.community() {
                    s.ignore("a response for another version or community".into());
                    return Ok(None);
                }
                if m.pdu.kind != Kind::Response || !ids.contains(&(m.pdu.request_id as i32)) {
                    s.ignore(format!(
                        "a {:?} with request-id {} that is not ours",
                        m.pdu.kind, m.pdu.request_id
                    ));
                    return Ok(None);
                }
                Ok(Some(m.pdu))
            },
        )
        .await
    }

    /// RFC 3414 §4: learns the agent's snmpEngineID (and boots/time) from the
    /// Report answering an unauthenticated, empty request.
    async fn discover(&mut self, user: &V3User) -> Result<(), SnmpError> {
        let report = self
            .exchange(
                |_, id| {
                    let scoped = encode::scoped_pdu(b"", b"", &Pdu::get(id, &[]));
                    Ok(encode::v3_message(
                        id,
                        encode::FLAG_REPORTABLE,
                        &UsmParams::default(),
                        MsgData::Plaintext(&scoped),
                    )
                    .bytes)
                },
                |s, datagram, ids| {
                    let m = match message::decode_v3(datagram) {
                        Ok(m) => m,
                        Err(e) => {
                            s.ignore(e.0);
                            return Ok(None);
                        }
                    };
                    if !ids.contains(&(m.msg_id as i32)) {
                        s.ignore(format!("msgID {} is not ours", m.msg_id));
                        return Ok(None);
                    }
                    if m.usm.engine_id.is_empty() || m.usm.engine_id.len() > 32 {
                        s.ignore("a discovery answer without a valid snmpEngineID".into());
                        return Ok(None);
                    }
                    Ok(Some(m.usm))
                },
            )
            .await?;
        let localize = |ku: &Vec<u8>, p: AuthProtocol| usm::localize_key(p, ku, &report.engine_id);
        let auth_key = user.auth.as_ref().map(|(p, ku)| localize(ku, *p));
        let priv_key = match (&user.auth, &user.privacy) {
            (Some((p, _)), Some((_, ku))) => Some(localize(ku, *p)),
            _ => None,
        };
        tracing::debug!(
            target_address = %self.target.address,
            engine_id = %hex(&report.engine_id),
            boots = report.engine_boots,
            time = report.engine_time,
            "discovered the SNMP engine"
        );
        self.engine = Some(Engine {
            id: report.engine_id,
            boots: report.engine_boots,
            time: report.engine_time,
            at: Instant::now(),
            auth_key,
            priv_key,
        });
        Ok(())
    }

    async fn v3_request(&mut self, user: &V3User, pdu: &Pdu) -> Result<ResponsePdu, SnmpError> {
        // A report that asks for a resynchronisation (time window, engine id) is
        // answered by retrying; twice is enough for any sane agent.
        for _ in 0..3 {
            if self.engine.is_none() {
                self.discover(user).await?;
            }
            match self.v3_once(user, pdu).await? {
                V3Outcome::Response(r) => return Ok(r),
                V3Outcome::Resync(why) => {
                    tracing::debug!(target_address = %self.target.address, "resynchronising: {why}");
                }
            }
        }
        Err(SnmpError::Auth(format!(
            "{}: the agent keeps rejecting the engine time or id (usmStatsNotInTimeWindows / usmStatsUnknownEngineIDs)",
            self.target.address
        )))
    }

    async fn v3_once(&mut self, user: &V3User, pdu: &Pdu) -> Result<V3Outcome, SnmpError> {
        let flags = encode::FLAG_REPORTABLE
            | if user.auth.is_some() {
                encode::FLAG_AUTH
            } else {
                0
            }
            | if user.privacy.is_some() {
                encode::FLAG_PRIV
            } else {
                0
            };
        self.exchange(
            |s, id| s.build_v3(user, flags, id, pdu),
            |s, datagram, ids| s.accept_v3(user, datagram, ids),
        )
        .await
    }

    fn build_v3(
        &mut self,
        user: &V3User,
        flags: u8,
        id: i32,
        pdu: &Pdu,
    ) -> Result<Vec<u8>, SnmpError> {
        let engine = self.engine.clone().expect("discovered before");
        let (boots, time) = (engine.boots, engine.time_now());
        let p = Pdu {
            request_id: id,
            ..pdu.clone()
        };
        let scoped = encode::scoped_pdu(&engine.id, &user.context, &p);
        let mut params = UsmParams {
            engine_id: engine.id.clone(),
            engine_boots: boots,
            engine_time: time,
            user_name: user.username.clone(),
            auth_params: Vec::new(),
            priv_params: Vec::new(),
        };
        let encrypted;
        let data = match &engine.priv_key {
            Some(key) if flags & encode::FLAG_PRIV != 0 => {
                self.salt = self.salt.wrapping_add(1);
                let salt = self.salt.to_be_bytes();
                params.priv_params = salt.to_vec();
                encrypted = usm::aes_encrypt(key, boots, time, &salt, &scoped);
                MsgData::Encrypted(&encrypted)
            }
            _ => MsgData::Plaintext(&scoped),
        };
        let auth = user.auth.as_ref().map(|(p, _)| *p);
        if let Some(p) = auth {
            params.auth_params = vec![0; p.mac_len()];
        }
        let mut msg = encode::v3_message(id, flags, &params, data);
        if let (Some(p), Some(key)) = (auth, &engine.auth_key) {
            let mac = usm::sign(p, key, &msg.bytes);
            msg.bytes[msg.auth_range.clone()].copy_from_slice(&mac);
        }
        Ok(msg.bytes)
    }

    fn accept_v3(
        &mut self,
        user: &V3User,
        datagram: &[u8],
        ids: &[i32],
    ) -> Result<Option<V3Outcome>, SnmpError> {
        let m = match message::decode_v3(datagram) {
            Ok(m) => m,
            Err(e) => {
                self.ignore(e.0);
                return Ok(None);
            }
        };
        if !ids.contains(&(m.msg_id as i32)) {
            self.ignore(format!("msgID {} is not ours", m.msg_id));
            return Ok(None);
        }
        let Some(engine) = self.engine.clone() else {
            return Ok(None);
        };
        let authenticated = m.flags & encode::FLAG_AUTH != 0;
        // RFC 3414 §3.2 steps 6-7: check the MAC, then the time window.
        if authenticated {
            let (Some((proto, _)), Some(key)) = (&user.auth, &engine.auth_key) else {
                self.ignore("an authenticated message for a user without authentication".into());
                return Ok(None);
            };
            if m.usm.engine_id != engine.id {
                self.ignore("an authenticated message from another snmpEngineID".into());
                return Ok(None);
            }
            let mut zeroed = datagram.to_vec();
            zeroed[m.auth_range.clone()].fill(0);
            if !usm::verify(*proto, key, &zeroed, &m.usm.auth_params) {
                self.ignore("a message whose MAC does not verify".into());
                return Ok(None);
            }
        }
        let scoped = match &m.data {
            V3Data::Plain(s) => s.clone(),
            V3Data::Encrypted(enc) => {
                let Some(key) = &engine.priv_key else {
                    self.ignore("an encrypted message for a user without privacy".into());
                    return Ok(None);
                };
                if !authenticated {
                    self.ignore("an encrypted message that is not authenticated".into());
                    return Ok(None);
                }
                let plain = usm::aes_decrypt(
                    key,
                    m.usm.engine_boots,
                    m.usm.engine_time,
                    &m.usm.priv_params,
                    enc,
                )
                .ok_or_else(|| {
                    SnmpError::Decryption(format!(
                        "the response has a {}-octet salt (msgPrivacyParameters), 8 expected",
                        m.usm.priv_params.len()
                    ))
                })?;
                // The MAC verified, so the agent did encrypt this with some key: a
                // failure here means our priv key differs from the agent's.
                message::decode_decrypted_scoped_pdu(&m, &plain).map_err(|e| {
                    SnmpError::Decryption(format!("{e}; check priv_password and priv_protocol"))
                })?
            }
        };
        let pdu = scoped.pdu;
        if pdu.kind == Kind::Report {
            return self.report(user, &m.usm, authenticated, &pdu).map(Some);
        }
        if pdu.kind != Kind::Response || !ids.contains(&(pdu.request_id as i32)) {
            self.ignore(format!(
                "a {:?} with request-id {} that is not ours",
                pdu.kind, pdu.request_id
            ));
            return Ok(None);
        }
        if user.auth.is_some() && !authenticated {
            self.ignore("an unauthenticated response to an authenticated request".into());
            return Ok(None);
        }
        if authenticated {
            self.update_time(&m.usm)?;
        }
        Ok(Some(V3Outcome::Response(pdu)))
    }

    /// RFC 3414 §3.2 step 7b, for a non-authoritative engine: learn newer
    /// boots/time; refuse a message from an earlier boot cycle (a replay). A time
    /// more than 150 s behind our estimate within the same boot cycle would also
    /// be refused by the RFC; since the message passed the MAC and answers a msgID
    /// we just sent, it is the agent's clock running slower than ours, so the
    /// estimate is re-based instead of failing the target.
    fn update_time(&mut self, p: &UsmParams) -> Result<(), SnmpError> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        if p.engine_boots == i32::MAX as u32 {
            return Err(SnmpError::Auth(
                "the agent's snmpEngineBoots reached its maximum (2147483647)".into(),
            ));
        }
        if p.engine_boots < engine.boots {
            // Resynchronise from scratch on the next request.
            self.engine = None;
            return Err(SnmpError::Auth(
                "a response from an earlier snmpEngineBoots (RFC 3414 §3.2 step 7b)".into(),
            ));
        }
        let now = engine.time_now();
        if p.engine_boots > engine.boots
            || p.engine_time > now
            || p.engine_time.saturating_add(150) < now
        {
            engine.boots = p.engine_boots;
            engine.time = p.engine_time;
            engine.at = Instant::now();
        }
        Ok(())
    }

    fn report(
        &mut self,
        user: &V3User,
        p: &UsmParams,
        authenticated: bool,
        pdu: &ResponsePdu,
    ) -> Result<V3Outcome, SnmpError> {
        let which = pdu
            .varbinds
            .first()
            .and_then(|(o, _)| o.suffix(&Oid::from_slice(USM_STATS)))
            .and_then(|s| s.first().copied());
        let name = String::from_utf8_lossy(&user.username).into_owned();
        match which {
            // usmStatsNotInTimeWindows: an authenticated report carries the
            // agent's clock (RFC 3414 §3.2 step 7a); adopt it and retry.
            Some(2) if authenticated => {
                if let Some(e) = self.engine.as_mut() {
                    e.boots = p.engine_boots;
                    e.time = p.engine_time;
                    e.at = Instant::now();
                }
                Ok(V3Outcome::Resync("usmStatsNotInTimeWindows"))
            }
            Some(2) => Err(SnmpError::Auth(
                "the agent says the request is not in its time window (usmStatsNotInTimeWindows) but did not authenticate the report".into(),
            )),
            // usmStatsUnknownEngineIDs: the agent's engine id changed.
            Some(4) => {
                self.engine = None;
                Ok(V3Outcome::Resync("usmStatsUnknownEngineIDs"))
            }
            Some(1) => Err(SnmpError::Auth(format!(
                "the agent does not support this security level for user {name:?} (usmStatsUnsupportedSecLevels)"
            ))),
            Some(3) => Err(SnmpError::Auth(format!(
                "the agent does not know user {name:?} (usmStatsUnknownUserNames)"
            ))),
            Some(5) => Err(SnmpError::Auth(format!(
                "wrong digest for user {name:?}: check auth_password and auth_protocol (usmStatsWrongDigests)"
            ))),
            Some(6) => Err(SnmpError::Decryption(format!(
                "the agent could not decrypt the request of user {name:?}: check priv_password and priv_protocol (usmStatsDecryptionErrors)"
            ))),
            _ => Err(SnmpError::Agent(format!(
                "the agent sent a report: {}",
                pdu.varbinds
                    .first()
                    .map(|(o, v)| format!("{o} = {v:?}"))
                    .unwrap_or_else(|| "(empty)".into())
            ))),
        }
    }

    /// GETs scalar instances; missing objects are left out of the result. Uses
    /// several requests for many OIDs, and for SNMPv1 drops each variable the
    /// agent reports as noSuchName (RFC 1157 §4.1.2) and asks again.
    pub async fn get(&mut self, oids: &[Oid]) -> Result<Vec<(Oid, Value)>, SnmpError> {
        let mut out = Vec::new();
        for chunk in oids.chunks(GET_CHUNK) {
            let mut wanted: Vec<Oid> = chunk.to_vec();
            while !wanted.is_empty() {
                let r = self.request(&Pdu::get(0, &wanted)).await?;
                match r.error_status {
                    0 => {
                        out.extend(
                            r.varbinds
                                .into_iter()
                                .filter(|(o, v)| !v.is_exception() && wanted.contains(o)),
                        );
                        break;
                    }
                    2 if (1..=wanted.len()).contains(&(r.error_index as usize)) => {
                        wanted.remove(r.error_index as usize - 1);
                    }
                    s => {
                        return Err(SnmpError::Agent(format!(
                            "GET answered {} (error-index {})",
                            error_status_name(s),
                            r.error_index
                        )))
                    }
                }
            }
        }
        Ok(out)
    }

    /// Walks the subtree under `root` (GETBULK with `max_repetitions` for v2c and
    /// v3, GETNEXT for v1) and appends what it finds to `out`.
    pub async fn walk(
        &mut self,
        root: &Oid,
        max_repetitions: u32,
        out: &mut Vec<(Oid, Value)>,
    ) -> Result<(), SnmpError> {
        let mut cursor = root.clone();
        let mut found = 0usize;
        loop {
            let pdu = if self.is_v1() {
                Pdu::get_next(0, std::slice::from_ref(&cursor))
            } else {
                Pdu::get_bulk(0, 0, max_repetitions, std::slice::from_ref(&cursor))
            };
            let r = self.request(&pdu).await?;
            match r.error_status {
                0 => {}
                // SNMPv1 signals the end of the MIB view this way.
                2 if self.is_v1() => return Ok(()),
                s => {
                    return Err(SnmpError::Agent(format!(
                        "walking {root} answered {} at {cursor}",
                        error_status_name(s)
                    )))
                }
            }
            if r.varbinds.is_empty() {
                return Ok(());
            }
            for (oid, value) in r.varbinds {
                if value == Value::EndOfMibView || !oid.starts_with(root) {
                    return Ok(());
                }
                if oid <= cursor {
                    return Err(SnmpError::Agent(format!(
                        "walking {root}: the agent returned {oid} after {cursor} (OIDs not increasing)"
                    )));
                }
                // Copied into the cursor's own buffer: no allocation per variable.
                cursor.0.clear();
                cursor.0.extend_from_slice(oid.arcs());
                found += 1;
                if found > MAX_WALK_VARBINDS {
                    return Err(SnmpError::Agent(format!(
                        "walking {root}: more than {MAX_WALK_VARBINDS} variables"
                    )));
                }
                if !value.is_exception() {
                    out.push((oid, value));
                }
            }
        }
    }
}

enum V3Outcome {
    Response(ResponsePdu),
    Resync(&'static str),
}

/// Lower-case hex, for engine ids in logs.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        encode::{community_message, PduType},
        message::{decode_community, decode_v3},
    };
    use snmp_parser::{asn1_rs::FromBer, SnmpGenericMessage, SnmpPdu};
    use std::net::SocketAddr;

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    fn target(json: serde_json::Value) -> Target {
        let c: Config = serde_json::from_value(serde_json::json!({ "targets": [json] })).unwrap();
        c.resolve().unwrap().targets.remove(0)
    }

    /// A scripted agent: `handler` gets each request and returns the datagrams to
    /// send back.
    async fn fake_agent(
        mut handler: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                for reply in handler(&buf[..n]) {
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        });
        addr
    }

    fn response(
        version: CommunityVersion,
        id: u32,
        status: u32,
        index: u32,
        vars: Vec<(Oid, Value)>,
    ) -> Vec<u8> {
        community_message(
            version,
            b"public",
            &Pdu {
                pdu_type: PduType::Response,
                request_id: id as i32,
                error_status: status,
                error_index: index,
                varbinds: vars,
            },
        )
    }

    #[tokio::test]
    async fn stray_datagrams_are_ignored_until_the_real_answer() {
        let addr = fake_agent(|req| {
            let m = decode_community(req).unwrap();
            let id = m.pdu.request_id;
            vec![
                b"\x30\x03garbage".to_vec(),
                response(CommunityVersion::V2c, id.wrapping_add(7), 0, 0, vec![]),
                response(
                    CommunityVersion::V2c,
                    id,
                    0,
                    0,
                    vec![(oid("1.3.6.1.2.1.1.5.0"), Value::OctetString(b"x".to_vec()))],
                ),
            ]
        })
        .await;
        let mut s = Session::new(target(serde_json::json!({"address": addr.to_string()})));
        let got = s.get(&[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap();
        assert_eq!(
            got,
            [(oid("1.3.6.1.2.1.1.5.0"), Value::OctetString(b"x".to_vec()))]
        );
        assert_eq!(s.ignored_datagrams, 2);
        assert_eq!(s.requests_sent, 1);
    }

    /// One socket serves every request of a session, across collections; a
    /// network error (here the ICMP port unreachable of a closed port) drops it
    /// and the next request makes a new one.
    #[tokio::test]
    async fn the_socket_is_kept_and_made_again_after_a_network_error() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut s = Session::new(target(
            serde_json::json!({"address": addr.to_string(), "timeout": "2s", "retries": 0}),
        ));
        let e = s.get(&[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap_err();
        assert!(matches!(e, SnmpError::Network(_)), "{e}");
        assert_eq!(s.sockets_created, 1);
        // The agent comes up on that port.
        let sock = UdpSocket::bind(addr).await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let m = decode_community(&buf[..n]).unwrap();
                let vars = m
                    .pdu
                    .varbinds
                    .into_iter()
                    .map(|(o, _)| (o, Value::Integer(1)))
                    .collect();
                let r = response(CommunityVersion::V2c, m.pdu.request_id, 0, 0, vars);
                let _ = sock.send_to(&r, from).await;
            }
        });
        for round in 0..3 {
            let got = s.get(&[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap();
            assert_eq!(got.len(), 1, "round {round}");
        }
        assert_eq!(
            s.sockets_created, 2,
            "one new socket after the error, then kept"
        );
        assert_eq!(s.requests_sent, 4);
    }

    /// Each attempt is encoded with its own request-id, and the bytes are those of
    /// the PDU with that id.
    #[tokio::test]
    async fn retries_carry_fresh_request_ids() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let addr = fake_agent(move |req| {
            let m = decode_community(req).unwrap();
            let mut seen = seen2.lock().unwrap();
            seen.push((m.pdu.request_id, req.to_vec()));
            if seen.len() < 3 {
                return vec![]; // time out the first two attempts
            }
            vec![response(
                CommunityVersion::V2c,
                m.pdu.request_id,
                0,
                0,
                vec![],
            )]
        })
        .await;
        let mut s = Session::new(target(
            serde_json::json!({"address": addr.to_string(), "timeout": "100ms", "retries": 2}),
        ));
        let pdu = Pdu::get_bulk(0, 0, 25, &[oid("1.3.6.1.2.1.2.2.1")]);
        s.request(&pdu).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let mut ids: Vec<u32> = seen.iter().map(|(i, _)| *i).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3, "{ids:?}");
        for (id, bytes) in seen.iter() {
            let p = Pdu {
                request_id: *id as i32,
                ..pdu.clone()
            };
            assert_eq!(
                bytes,
                &community_message(CommunityVersion::V2c, b"public", &p)
            );
        }
    }

    #[tokio::test]
    async fn v1_get_drops_each_no_such_name_and_asks_again() {
        let addr = fake_agent(|req| {
            let m = decode_community(req).unwrap();
            let names: Vec<Oid> = m.pdu.varbinds.iter().map(|(o, _)| o.clone()).collect();
            // The second variable does not exist.
            if let Some(i) = names.iter().position(|o| o == &oid("1.3.6.1.4.1.99.0")) {
                return vec![response(
                    CommunityVersion::V1,
                    m.pdu.request_id,
                    2,
                    i as u32 + 1,
                    m.pdu.varbinds,
                )];
            }
            let vars = names.into_iter().map(|o| (o, Value::Integer(5))).collect();
            vec![response(CommunityVersion::V1, m.pdu.request_id, 0, 0, vars)]
        })
        .await;
        let mut s = Session::new(target(
            serde_json::json!({"address": addr.to_string(), "version": "v1"}),
        ));
        let got = s
            .get(&[
                oid("1.3.6.1.2.1.1.7.0"),
                oid("1.3.6.1.4.1.99.0"),
                oid("1.3.6.1.2.1.1.3.0"),
            ])
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(s.requests_sent, 2);
    }

    #[tokio::test]
    async fn a_looping_agent_ends_the_walk_with_an_error() {
        let addr = fake_agent(|req| {
            let (_, m) = SnmpGenericMessage::from_ber(req).unwrap();
            let SnmpGenericMessage::V2(m) = m else {
                panic!()
            };
            let SnmpPdu::Bulk(b) = &m.pdu else { panic!() };
            // Always the same OID: the walk would never end.
            vec![response(
                CommunityVersion::V2c,
                b.req_id,
                0,
                0,
                vec![(oid("1.3.6.1.2.1.2.2.1.1.1"), Value::Integer(1))],
            )]
        })
        .await;
        let mut s = Session::new(target(serde_json::json!({"address": addr.to_string()})));
        let mut out = Vec::new();
        let e = s
            .walk(&oid("1.3.6.1.2.1.2.2.1"), 10, &mut out)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, SnmpError::Agent(m) if m.contains("not increasing")),
            "{e}"
        );
        assert!(!e.is_fatal());
        assert_eq!(out.len(), 1);
    }

    /// An authoritative engine whose discovery report carries a stale clock: the
    /// first authenticated request is answered by an authenticated
    /// usmStatsNotInTimeWindows report, after which the request is resent with the
    /// agent's clock and answered (RFC 3414 §3.2 step 7, §4).
    #[tokio::test]
    async fn v3_resynchronises_after_not_in_time_window() {
        let engine = vec![0x80, 0x00, 0x1f, 0x88, 0x80, 9, 9, 9, 9];
        let key = usm::localize_key(
            AuthProtocol::Sha256,
            &usm::password_to_key(AuthProtocol::Sha256, b"authpass456"),
            &engine,
        );
        let (e2, k2) = (engine.clone(), key.clone());
        let seen_times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = seen_times.clone();
        let addr = fake_agent(move |req| {
            let m = decode_v3(req).unwrap();
            let V3Data::Plain(scoped) = &m.data else {
                panic!("authNoPriv expected")
            };
            let reply = |flags: u8, boots: u32, time: u32, pdu: Pdu| {
                let usm_params = UsmParams {
                    engine_id: e2.clone(),
                    engine_boots: boots,
                    engine_time: time,
                    user_name: m.usm.user_name.clone(),
                    auth_params: if flags & encode::FLAG_AUTH != 0 {
                        vec![0; 24]
                    } else {
                        vec![]
                    },
                    priv_params: vec![],
                };
                let sp = encode::scoped_pdu(&e2, b"", &pdu);
                let mut msg = encode::v3_message(
                    m.msg_id as i32,
                    flags,
                    &usm_params,
                    MsgData::Plaintext(&sp),
                );
                if flags & encode::FLAG_AUTH != 0 {
                    let mac = usm::sign(AuthProtocol::Sha256, &k2, &msg.bytes);
                    msg.bytes[msg.auth_range.clone()].copy_from_slice(&mac);
                }
                msg.bytes
            };
            let report = |which: u32, flags: u8, time: u32| {
                reply(
                    flags,
                    5,
                    time,
                    Pdu {
                        pdu_type: PduType::Report,
                        request_id: scoped.pdu.request_id as i32,
                        error_status: 0,
                        error_index: 0,
                        varbinds: vec![(
                            Oid::from_slice(USM_STATS).child(&[which, 0]),
                            Value::Counter32(1),
                        )],
                    },
                )
            };
            if m.usm.engine_id.is_empty() {
                return vec![report(4, 0, 10)];
            }
            let mut zeroed = req.to_vec();
            zeroed[m.auth_range.clone()].fill(0);
            assert!(usm::verify(
                AuthProtocol::Sha256,
                &k2,
                &zeroed,
                &m.usm.auth_params
            ));
            seen.lock().unwrap().push(m.usm.engine_time);
            if m.usm.engine_time < 900 {
                return vec![report(2, encode::FLAG_AUTH, 1000)];
            }
            vec![reply(
                encode::FLAG_AUTH,
                5,
                1000,
                Pdu {
                    pdu_type: PduType::Response,
                    request_id: scoped.pdu.request_id as i32,
                    error_status: 0,
                    error_index: 0,
                    varbinds: vec![(oid("1.3.6.1.2.1.1.5.0"), Value::OctetString(b"v3".to_vec()))],
                },
            )]
        })
        .await;
        let mut s = Session::new(target(
            serde_json::json!({"address": addr.to_string(), "version": "v3",
            "user": {"username": "u", "auth_protocol": "SHA256", "auth_password": "authpass456"}}),
        ));
        let got = s.get(&[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap();
        assert_eq!(got[0].1, Value::OctetString(b"v3".to_vec()));
        let times = seen_times.lock().unwrap().clone();
        assert_eq!(times.len(), 2, "{times:?}");
        assert!(
            times[0] < 900 && (1000..1010).contains(&times[1]),
            "{times:?}"
        );
        // Discovery, the refused request, the resent one.
        assert_eq!(s.requests_sent, 3);
    }
}
