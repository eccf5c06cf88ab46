//! The transport: one librdkafka producer per instance (rust-rdkafka's
//! `FutureProducer`: librdkafka's own threads plus one polling thread that serves
//! delivery reports), and the rule that turns delivery reports into the export
//! result.
//!
//! `export` enqueues every record, then waits for every record's delivery report
//! (librdkafka guarantees one per message within `message.timeout.ms`): it returns
//! `Ok` only when all were delivered (with `acks=all` and the idempotent producer,
//! written to every in-sync replica, without duplicates from librdkafka's own
//! retries). Failed reports are classified by [`classify`]: errors a retry cannot
//! fix (message too large, authorization refused, invalid record...) are permanent;
//! everything else (broker transport failure, all brokers down, message timed out,
//! not leader, unknown topic...) is retryable, and the host retries the batch.
//! Librdkafka has already retried inside `message.timeout.ms`, so a retryable
//! report means the cluster was unreachable or unhealthy for that long.
//!
//! Delivery semantics: at least once. When a batch fails with some of its records
//! delivered, the host retries the whole batch and those records are produced again.
//!
//! A fatal producer error (librdkafka's idempotence state machine gave up, e.g. on
//! `OutOfOrderSequenceNumber`) makes the producer unusable: the batch fails
//! retryably and a new producer is built at once for the next export.
//!
//! librdkafka reference: "Message reliability" and "Idempotent Producer" in
//! <https://github.com/confluentinc/librdkafka/blob/v2.0.2/INTRODUCTION.md>.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    client::ClientContext,
    config::RDKafkaLogLevel,
    error::{KafkaError, RDKafkaErrorCode},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _, PurgeConfig},
    util::Timeout,
};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RStr, ErrorKind, HostHandle, LogLevel, PluginError,
};
use tokio::time::Instant;

use crate::{config::Settings, encode::Record};

/// How a delivery error is treated.
pub fn classify(e: &KafkaError) -> ErrorKind {
    match e {
        KafkaError::MessageProduction(code) => classify_code(*code),
        // Canceled (producer dropped), transport-level and the rest: try again.
        _ => ErrorKind::Retryable,
    }
}

/// [`classify`] for one librdkafka error code.
pub fn classify_code(code: RDKafkaErrorCode) -> ErrorKind {
    use RDKafkaErrorCode as C;
    match code {
        // The record itself is refused: sending it again gives the same answer.
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::InvalidRecord
        | C::InvalidTopic
        | C::InvalidTimestamp
        | C::BadMessage
        | C::BadCompression
        | C::UnsupportedCompressionType
        | C::UnsupportedForMessageFormat
        | C::PolicyViolation
        | C::InvalidRequiredAcks
        | C::InvalidRequest
        | C::InvalidConfig
        | C::InvalidArgument
        | C::UnsupportedVersion
        | C::UnsupportedFeature
        | C::KeySerialization
        | C::ValueSerialization
        // Credentials or ACLs refuse it: needs an operator, not a retry.
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::UnsupportedSASLMechanism
        | C::IllegalSASLState
        | C::Authentication
        | C::SecurityDisabled => ErrorKind::Permanent,
        _ => ErrorKind::Retryable,
    }
}

/// State shared with librdkafka's callbacks (they run on librdkafka's threads and
/// the polling thread): the last client-level error, for health.
#[derive(Default)]
pub struct Shared {
    /// Last error reported by librdkafka's error callback (e.g. all brokers down),
    /// cleared by a successful export.
    pub last_error: Mutex<Option<String>>,
    /// The last authentication failure (SASL refused) reported since the last
    /// successful export; other client errors (all brokers down...) do not clear it.
    pub auth_error: Mutex<Option<String>>,
}

/// Client-level errors that mean "the credentials are refused": messages then time
/// out, and that timeout is reported as permanent (a retry cannot fix it).
fn is_auth_error(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState
        )
    )
}

/// The librdkafka client context: forwards librdkafka's log lines and errors to
/// the host's log (a `tracing` event on a librdkafka thread would reach no
/// subscriber) and records the last error.
pub struct KafkaContext {
    host: HostHandle,
    shared: Arc<Shared>,
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => LogLevel::Error,
            RDKafkaLogLevel::Warning => LogLevel::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => LogLevel::Info,
            RDKafkaLogLevel::Debug => LogLevel::Debug,
        };
        let msg = format!("librdkafka {fac}: {log_message}");
        self.host
            .log(level, RStr::from_str("librdkafka"), RStr::from_str(&msg));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_auth_error(error.rdkafka_error_code()) {
            *self
                .shared
                .auth_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(format!("{error}: {reason}"));
        }
        let msg = format!("librdkafka error: {error}: {reason}");
        self.host.log(
            LogLevel::Warn,
            RStr::from_str("librdkafka"),
            RStr::from_str(&msg),
        );
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(format!("{error}: {reason}"));
    }
}

/// The producer of one instance.
pub struct Producer {
    inner: FutureProducer<KafkaContext>,
    shared: Arc<Shared>,
}

/// Outcome of producing a set of records.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Items in delivered records.
    pub delivered_items: u64,
    /// Records delivered.
    pub delivered: usize,
    /// Failed records: (kind, description).
    pub failures: Vec<(ErrorKind, String)>,
    /// A failure left the producer unusable (fatal idempotence error).
    pub fatal: bool,
    /// The wait ended before every report arrived.
    pub timed_out: bool,
    /// Every failure was a timeout while the brokers refused authentication: the
    /// client error, which makes the failure permanent.
    pub auth_refused: Option<String>,
}

impl Delivery {
    fn fail(&mut self, e: &KafkaError) {
        if matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::Fatal)) {
            self.fatal = true;
        }
        self.failures.push((classify(e), e.to_string()));
    }

    /// The export result: `Ok(delivered items)` when nothing failed; otherwise
    /// retryable if any failure is retryable, else permanent.
    pub fn into_result(self, total: usize) -> Result<u64, PluginError> {
        if self.failures.is_empty() {
            return Ok(self.delivered_items);
        }
        let retryable = self
            .failures
            .iter()
            .any(|(k, _)| *k == ErrorKind::Retryable)
            && self.auth_refused.is_none();
        let first = self
            .failures
            .iter()
            .find(|(k, _)| !retryable || *k == ErrorKind::Retryable)
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        let mut msg = format!(
            "{} of {total} Kafka record(s) not delivered ({} delivered): {first}",
            self.failures.len(),
            self.delivered
        );
        if let Some(why) = &self.auth_refused {
            msg.push_str(&format!(" (the brokers refused authentication: {why})"));
        }
        let mut e = if retryable {
            PluginError::retryable(msg)
        } else {
            PluginError::permanent(msg)
        };
        e.accepted = self.delivered_items;
        Err(e)
    }
}

impl Producer {
    /// Creates the producer (librdkafka starts its threads and connects to the
    /// bootstrap brokers in the background).
    pub fn new(settings: &Settings, host: HostHandle) -> Result<Self, String> {
        let shared = Arc::new(Shared::default());
        let context = KafkaContext {
            host,
            shared: shared.clone(),
        };
        let mut config = settings.client_config();
        config.set_log_level(RDKafkaLogLevel::Warning);
        let inner = config
            .create_with_context(context)
            .map_err(|e| format!("creating the Kafka producer: {e}"))?;
        Ok(Producer { inner, shared })
    }

    /// Shared state (last client error).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Enqueues every record to its topic and waits for every delivery report, at
    /// most `wait`.
    pub async fn produce(&self, records: &[(&str, Record)], wait: Duration) -> Delivery {
        let deadline = Instant::now() + wait;
        let mut out = Delivery::default();
        let mut pending: VecDeque<(DeliveryFuture, u64)> = VecDeque::new();
        for (topic, r) in records {
            loop {
                let mut rec = FutureRecord::to(topic).payload(&r.payload[..]);
                if let Some(k) = &r.key {
                    rec = rec.key(&k[..]);
                }
                match self.inner.send_result(rec) {
                    Ok(f) => {
                        pending.push_back((f, r.items));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                        if Instant::now() < deadline =>
                    {
                        // librdkafka's queue is full: wait for our oldest record.
                        match pending.pop_front() {
                            Some(p) => Self::settle(p, deadline, &mut out).await,
                            None => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                    Err((e, _)) => {
                        out.fail(&e);
                        break;
                    }
                }
            }
        }
        while let Some(p) = pending.pop_front() {
            Self::settle(p, deadline, &mut out).await;
        }
        if out.timed_out {
            // Given up on: drop what librdkafka has not sent yet, so the host's
            // retry does not duplicate it (what is in flight may still land).
            self.inner.purge(PurgeConfig::default().queue());
        }
        let clear = |m: &Mutex<Option<String>>| *m.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if out.failures.is_empty() {
            clear(&self.shared.last_error);
            clear(&self.shared.auth_error);
        } else if out
            .failures
            .iter()
            .all(|(_, m)| m.contains("MessageTimedOut") || m.contains("no delivery report"))
        {
            out.auth_refused = self
                .shared
                .auth_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
        }
        out
    }

    async fn settle((f, items): (DeliveryFuture, u64), deadline: Instant, out: &mut Delivery) {
        match tokio::time::timeout_at(deadline, f).await {
            Ok(Ok(Ok(_))) => {
                out.delivered += 1;
                out.delivered_items += items;
            }
            Ok(Ok(Err((e, _)))) => out.fail(&e),
            Ok(Err(_canceled)) => out.fail(&KafkaError::Canceled),
            Err(_elapsed) => {
                out.timed_out = true;
                out.failures.push((
                    ErrorKind::Retryable,
                    "no delivery report within the export timeout".to_string(),
                ));
            }
        }
    }

    /// Waits up to `within` for queued messages, then drops the rest (they are
    /// reported as purged; the host still holds their batch).
    pub fn close(self, within: Duration) {
        if let Err(e) = self.inner.flush(Timeout::After(within)) {
            tracing::warn!("kafka: messages still queued at shutdown were dropped: {e}");
        }
        // Dropping purges what is left, joins the polling thread and destroys the
        // librdkafka handle (joining its threads).
        drop(self.inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_errors_are_told_apart() {
        use RDKafkaErrorCode as C;
        for c in [
            C::MessageSizeTooLarge,
            C::TopicAuthorizationFailed,
            C::SaslAuthenticationFailed,
            C::InvalidRecord,
        ] {
            assert_eq!(classify_code(c), ErrorKind::Permanent, "{c:?}");
        }
        for c in [
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::MessageTimedOut,
            C::RequestTimedOut,
            C::NotLeaderForPartition,
            C::UnknownTopicOrPartition,
            C::NotEnoughReplicas,
            C::QueueFull,
            C::Fatal,
        ] {
            assert_eq!(classify_code(c), ErrorKind::Retryable, "{c:?}");
        }
        assert_eq!(classify(&KafkaError::Canceled), ErrorKind::Retryable);
    }

    #[test]
    fn a_retryable_failure_wins_and_delivered_items_are_reported() {
        let mut d = Delivery {
            delivered_items: 5,
            delivered: 2,
            ..Delivery::default()
        };
        d.fail(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge,
        ));
        d.fail(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        ));
        let e = d.into_result(4).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable);
        assert_eq!(e.accepted, 5);
        assert!(e.message.contains("2 of 4"), "{}", e.message);

        let mut d = Delivery::default();
        d.fail(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge,
        ));
        assert_eq!(d.into_result(1).unwrap_err().kind, ErrorKind::Permanent);
        assert_eq!(
            Delivery {
                delivered_items: 3,
                ..Delivery::default()
            }
            .into_result(1)
            .unwrap(),
            3
        );
    }
}
