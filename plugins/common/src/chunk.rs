//! Splitting encoded entries into request payloads that respect a backend's size
//! and count limits, with gzip applied before the size of the body as sent is
//! checked.
//!
//! Why it is shared: vendor JSON intakes cap each request by entry count, by size
//! before compression and by size as sent (Datadog's series API: 512000 bytes as
//! sent and under 5 MiB decompressed, its logs intake 1000 entries and 5 MB; New
//! Relic's Metric, Log and Trace APIs: 1 MB per POST). An exporter must never build
//! a request the backend will refuse for its size, and must be able to halve a
//! payload the backend still answers 413 to. The rules are the same for every such
//! sink (the datadog and newrelic plugins use them), so they live here once, pure
//! and tested, not in each plugin's I/O code.
//!
//! [`deliver`] sends a batch's payloads in order and applies the answers the same
//! way for every such sink: a 413 halves the payload and sends the halves, a
//! payload refused for good is reported and the others still go, a retryable
//! failure stops the export and remembers which payloads of the batch were
//! delivered ([`Resume`]), so the host's retry of the same batch sends only the rest.
//!
//! An [`Entry`] is one already-serialized JSON element (a series, a log, a span)
//! with the number of agent items it carries (data points, log records, spans). A
//! [`Frame`] says how entries are joined into a body (`{"series":[` + `a,b` + `]}`,
//! or `[{"metrics":[` + `a,b` + `]}]`).

use std::{
    collections::{hash_map::DefaultHasher, HashSet, VecDeque},
    hash::{Hash, Hasher},
    sync::Mutex,
};

use tfo_plugin_api::{Batch, ErrorKind, PluginError};

use crate::http::gzip;

/// One serialized element of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The element's bytes (JSON).
    pub json: Vec<u8>,
    /// Agent items it carries (data points, log records), for `accepted` counts.
    pub items: u64,
}

/// How entries are joined into a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Written before the first entry.
    pub prefix: String,
    /// Written between entries.
    pub separator: String,
    /// Written after the last entry.
    pub suffix: String,
}

impl Frame {
    /// A JSON array of the entries: `[a,b]`.
    pub fn json_array() -> Frame {
        Frame {
            prefix: "[".into(),
            separator: ",".into(),
            suffix: "]".into(),
        }
    }
}

/// A backend's per-request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one request.
    pub max_entries: usize,
    /// Largest body before compression.
    pub max_uncompressed: usize,
    /// Largest body as sent (after compression when it is on).
    pub max_sent: usize,
}

/// One request body ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The entries it holds (kept so a 413 answer can split it).
    pub entries: Vec<Entry>,
    /// The body as sent (gzip-compressed when the packer compresses).
    pub body: Vec<u8>,
    /// Size of the body before compression.
    pub raw_len: usize,
    /// Agent items in it.
    pub items: u64,
}

/// Entries that could not be sent, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Agent items lost.
    pub items: u64,
    /// Why.
    pub reason: String,
}

/// Payloads and the entries that could not be sent.
pub type Packed = (Vec<Payload>, Vec<Dropped>);

/// Builds payloads for one frame, limit set and compression setting.
#[derive(Debug, Clone)]
pub struct Packer {
    /// Joining rule.
    pub frame: Frame,
    /// Limits.
    pub limits: Limits,
    /// Compress bodies with gzip.
    pub gzip: bool,
}

impl Packer {
    /// Groups `entries` greedily (in order) into payloads within the limits. An
    /// entry that cannot fit even alone is dropped and reported.
    pub fn pack(&self, entries: Vec<Entry>) -> Result<Packed, String> {
        let overhead = self.frame.prefix.len() + self.frame.suffix.len();
        let sep = self.frame.separator.len();
        let mut payloads = Vec::new();
        let mut dropped = Vec::new();
        let mut group: Vec<Entry> = Vec::new();
        let mut size = overhead;
        for e in entries {
            if overhead + e.json.len() > self.limits.max_uncompressed {
                dropped.push(Dropped {
                    items: e.items,
                    reason: format!(
                        "one entry is {} bytes, over the {}-byte request limit",
                        e.json.len(),
                        self.limits.max_uncompressed
                    ),
                });
                continue;
            }
            let add = e.json.len() + if group.is_empty() { 0 } else { sep };
            if !group.is_empty()
                && (group.len() >= self.limits.max_entries
                    || size + add > self.limits.max_uncompressed)
            {
                self.finish(std::mem::take(&mut group), &mut payloads, &mut dropped)?;
                size = overhead;
            }
            size += e.json.len() + if group.is_empty() { 0 } else { sep };
            group.push(e);
        }
        if !group.is_empty() {
            self.finish(group, &mut payloads, &mut dropped)?;
        }
        Ok((payloads, dropped))
    }

    /// Halves a payload the backend refused as too large; `None` when it holds a
    /// single entry (nothing left to split).
    pub fn split(&self, payload: Payload) -> Result<Option<Packed>, String> {
        if payload.entries.len() < 2 {
            return Ok(None);
        }
        let mut entries = payload.entries;
        let second = entries.split_off(entries.len() / 2);
        let mut payloads = Vec::new();
        let mut dropped = Vec::new();
        self.finish(entries, &mut payloads, &mut dropped)?;
        self.finish(second, &mut payloads, &mut dropped)?;
        Ok(Some((payloads, dropped)))
    }

    /// The uncompressed body of `entries`.
    pub fn render(&self, entries: &[Entry]) -> Vec<u8> {
        let len: usize = entries.iter().map(|e| e.json.len() + 1).sum::<usize>()
            + self.frame.prefix.len()
            + self.frame.suffix.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(self.frame.prefix.as_bytes());
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.frame.separator.as_bytes());
            }
            out.extend_from_slice(&e.json);
        }
        out.extend_from_slice(self.frame.suffix.as_bytes());
        out
    }

    /// Renders and compresses a group; halves it while the body as sent is too big.
    fn finish(
        &self,
        entries: Vec<Entry>,
        payloads: &mut Vec<Payload>,
        dropped: &mut Vec<Dropped>,
    ) -> Result<(), String> {
        let raw = self.render(&entries);
        let body = if self.gzip {
            gzip(&raw).map_err(|e| format!("compressing a request body: {e}"))?
        } else {
            raw.clone()
        };
        if body.len() > self.limits.max_sent {
            if entries.len() < 2 {
                dropped.push(Dropped {
                    items: entries.iter().map(|e| e.items).sum(),
                    reason: format!(
                        "one entry is {} bytes as sent, over the {}-byte request limit",
                        body.len(),
                        self.limits.max_sent
                    ),
                });
                return Ok(());
            }
            let mut first = entries;
            let second = first.split_off(first.len() / 2);
            self.finish(first, payloads, dropped)?;
            return self.finish(second, payloads, dropped);
        }
        payloads.push(Payload {
            items: entries.iter().map(|e| e.items).sum(),
            raw_len: raw.len(),
            entries,
            body,
        });
        Ok(())
    }
}

/// What sending one payload came to, beyond success.
#[derive(Debug)]
pub enum Failure {
    /// 413: split and resend.
    TooLarge(String),
    /// This payload is refused for good; go on with the others.
    Rejected(String),
    /// Stop the export with this error.
    Stop(PluginError),
}

/// One payload and where it goes (`S`: the sink's signal or endpoint).
#[derive(Debug, Clone)]
pub struct Job<S> {
    /// The endpoint (signal) of the payload; also picks its [`Packer`].
    pub signal: S,
    /// The body and its entries.
    pub payload: Payload,
}

/// Which payloads of the last failed batch were delivered (fingerprints of
/// signal and body), so a retry of the same batch skips them. One per exporter.
#[derive(Debug, Default)]
pub struct Resume {
    last: Mutex<Option<(Batch, HashSet<u64>)>>,
}

impl Resume {
    /// The payloads delivered of `batch` before, if it is the batch that failed
    /// last; clears the memory either way.
    fn take(&self, batch: &Batch) -> HashSet<u64> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).take();
        match last {
            Some((b, delivered)) if b == *batch => delivered,
            _ => HashSet::new(),
        }
    }

    fn keep(&self, batch: &Batch, delivered: HashSet<u64>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((batch.clone(), delivered));
    }
}

/// What [`deliver`] achieved when it did not stop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Agent items delivered (now or by an earlier attempt of the same batch).
    pub accepted: u64,
    /// Why payloads (or parts of them) were refused for good, in order.
    pub rejected: Vec<String>,
}

fn fingerprint<S: Hash>(job: &Job<S>) -> u64 {
    let mut h = DefaultHasher::new();
    job.signal.hash(&mut h);
    job.payload.body.hash(&mut h);
    h.finish()
}

/// Sends `jobs` of `batch` in order with `send`, skipping those `resume` says were
/// delivered by an earlier attempt. On [`Failure::TooLarge`] the payload is halved
/// with its signal's packer (`packer`; `None`: cannot split) and the halves sent
/// next; on [`Failure::Rejected`] the payload is given up and the reason kept; on
/// [`Failure::Stop`] the export ends with that error (its `accepted` set), and when
/// it is retryable what was delivered is remembered in `resume`. `label` prefixes
/// log lines.
pub async fn deliver<'p, S: Copy + Hash>(
    label: &str,
    batch: &Batch,
    jobs: Vec<Job<S>>,
    resume: &Resume,
    packer: impl Fn(S) -> Option<&'p Packer>,
    mut send: impl AsyncFnMut(&Job<S>) -> Result<(), Failure>,
) -> Result<Delivery, PluginError> {
    let mut rejected = Vec::new();
    let mut delivered = resume.take(batch);
    let mut accepted = 0u64;
    let mut queue: VecDeque<Job<S>> = jobs.into();
    while let Some(job) = queue.pop_front() {
        let h = fingerprint(&job);
        if delivered.contains(&h) {
            accepted += job.payload.items;
            continue;
        }
        match send(&job).await {
            Ok(()) => {
                delivered.insert(h);
                accepted += job.payload.items;
            }
            Err(Failure::TooLarge(msg)) => {
                let items = job.payload.items;
                let split = match packer(job.signal) {
                    Some(p) => p.split(job.payload).map_err(PluginError::permanent)?,
                    None => None,
                };
                match split {
                    Some((parts, dropped)) => {
                        tracing::info!(
                            "{label}: payload too large for the backend, sending it in halves"
                        );
                        rejected.extend(dropped.into_iter().map(|d| d.reason));
                        for p in parts.into_iter().rev() {
                            queue.push_front(Job {
                                signal: job.signal,
                                payload: p,
                            });
                        }
                    }
                    None => {
                        tracing::warn!("{label}: {items} item(s) refused as too large: {msg}");
                        rejected.push(msg);
                    }
                }
            }
            Err(Failure::Rejected(msg)) => {
                tracing::warn!("{label}: {} item(s) refused: {msg}", job.payload.items);
                rejected.push(msg);
            }
            Err(Failure::Stop(mut e)) => {
                e.accepted = accepted;
                if e.kind == ErrorKind::Retryable && !delivered.is_empty() {
                    resume.keep(batch, delivered);
                }
                return Err(e);
            }
        }
    }
    Ok(Delivery { accepted, rejected })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> Entry {
        Entry {
            json: s.as_bytes().to_vec(),
            items: 1,
        }
    }

    fn packer(max_entries: usize, max_uncompressed: usize, max_sent: usize, gzip: bool) -> Packer {
        Packer {
            frame: Frame {
                prefix: "{\"s\":[".into(),
                separator: ",".into(),
                suffix: "]}".into(),
            },
            limits: Limits {
                max_entries,
                max_uncompressed,
                max_sent,
            },
            gzip,
        }
    }

    fn texts(p: &Packer, payloads: &[Payload]) -> Vec<String> {
        payloads
            .iter()
            .map(|x| String::from_utf8(p.render(&x.entries)).unwrap())
            .collect()
    }

    #[test]
    fn joins_entries_in_one_payload_when_they_fit() {
        let p = packer(10, 1000, 1000, false);
        let (out, dropped) = p.pack(vec![entry("1"), entry("22"), entry("333")]).unwrap();
        assert!(dropped.is_empty());
        assert_eq!(texts(&p, &out), [r#"{"s":[1,22,333]}"#]);
        assert_eq!(out[0].body, br#"{"s":[1,22,333]}"#.to_vec());
        assert_eq!(out[0].items, 3);
    }

    #[test]
    fn respects_the_entry_count_limit() {
        let p = packer(2, 1000, 1000, false);
        let (out, _) = p
            .pack((0..5).map(|i| entry(&i.to_string())).collect())
            .unwrap();
        assert_eq!(
            texts(&p, &out),
            [r#"{"s":[0,1]}"#, r#"{"s":[2,3]}"#, r#"{"s":[4]}"#]
        );
    }

    #[test]
    fn respects_the_uncompressed_size_limit_exactly() {
        // prefix 6 + suffix 2 = 8; "aaaa,bbbb" = 9 -> 17 bytes fits a 17-byte limit.
        let p = packer(100, 17, 1000, false);
        let (out, _) = p
            .pack(vec![entry("aaaa"), entry("bbbb"), entry("cccc")])
            .unwrap();
        assert_eq!(texts(&p, &out), [r#"{"s":[aaaa,bbbb]}"#, r#"{"s":[cccc]}"#]);
        for x in &out {
            assert!(x.raw_len <= 17);
        }
    }

    #[test]
    fn drops_an_entry_too_big_to_send_alone() {
        let p = packer(100, 12, 1000, false);
        let (out, dropped) = p
            .pack(vec![entry("ok"), entry("far too long"), entry("ok2")])
            .unwrap();
        assert_eq!(texts(&p, &out), [r#"{"s":[ok]}"#, r#"{"s":[ok2]}"#]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].items, 1);
    }

    #[test]
    fn halves_until_the_compressed_body_fits() {
        // Incompressible-ish entries: distinct numbers.
        let entries: Vec<Entry> = (0..200)
            .map(|i| {
                entry(&format!(
                    "\"{:x}\"",
                    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ))
            })
            .collect();
        let p = packer(1000, 1 << 20, 1200, true);
        let (out, dropped) = p.pack(entries.clone()).unwrap();
        assert!(dropped.is_empty());
        assert!(out.len() > 1, "{}", out.len());
        let mut all = Vec::new();
        for x in &out {
            assert!(x.body.len() <= 1200, "{}", x.body.len());
            all.extend(x.entries.clone());
        }
        assert_eq!(all, entries, "order and content kept");
    }

    #[test]
    fn split_halves_and_refuses_single_entries() {
        let p = packer(10, 1000, 1000, true);
        let (mut out, _) = p.pack(vec![entry("1"), entry("2"), entry("3")]).unwrap();
        let (halves, dropped) = p.split(out.remove(0)).unwrap().unwrap();
        assert!(dropped.is_empty());
        assert_eq!(texts(&p, &halves), [r#"{"s":[1]}"#, r#"{"s":[2,3]}"#]);
        assert!(p.split(halves[0].clone()).unwrap().is_none());
    }
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn deliver_splits_on_413_skips_rejected_and_resumes_after_a_retryable_stop() {
        let p = packer(10, 1000, 1000, false);
        let (payloads, _) = p.pack(vec![entry("1"), entry("2"), entry("3")]).unwrap();
        let (other, _) = p.pack(vec![entry("9")]).unwrap();
        let jobs: Vec<Job<u8>> = payloads
            .into_iter()
            .map(|payload| Job { signal: 0, payload })
            .chain(other.into_iter().map(|payload| Job { signal: 1, payload }))
            .collect();
        let batch = Batch::default();
        let resume = Resume::default();
        // First attempt: the 3-entry payload is too large once, its halves go
        // ("1" refused for good, "2,3" delivered), then signal 1 is throttled.
        let mut sent = Vec::new();
        let e = block_on(deliver(
            "t",
            &batch,
            jobs.clone(),
            &resume,
            |_| Some(&p),
            async |j: &Job<u8>| {
                let body = String::from_utf8(p.render(&j.payload.entries)).unwrap();
                sent.push(body.clone());
                match body.as_str() {
                    r#"{"s":[1,2,3]}"# => Err(Failure::TooLarge("413".into())),
                    r#"{"s":[1]}"# => Err(Failure::Rejected("no".into())),
                    r#"{"s":[9]}"# => Err(Failure::Stop(PluginError::retryable("429"))),
                    _ => Ok(()),
                }
            },
        ))
        .unwrap_err();
        assert_eq!(
            sent,
            [
                r#"{"s":[1,2,3]}"#,
                r#"{"s":[1]}"#,
                r#"{"s":[2,3]}"#,
                r#"{"s":[9]}"#
            ]
        );
        assert_eq!((e.kind, e.accepted), (ErrorKind::Retryable, 2));
        // The retry of the same batch: the server still refuses the whole payload
        // as too large; of its halves, "2,3" was delivered before and is skipped
        // (counted as accepted), "1" is accepted now.
        let mut sent = Vec::new();
        let d = block_on(deliver(
            "t",
            &batch,
            jobs,
            &resume,
            |_| Some(&p),
            async |j: &Job<u8>| {
                let body = String::from_utf8(p.render(&j.payload.entries)).unwrap();
                sent.push(body.clone());
                match body.as_str() {
                    r#"{"s":[1,2,3]}"# => Err(Failure::TooLarge("413".into())),
                    _ => Ok(()),
                }
            },
        ))
        .unwrap();
        assert_eq!(sent, [r#"{"s":[1,2,3]}"#, r#"{"s":[1]}"#, r#"{"s":[9]}"#]);
        assert_eq!(
            d,
            Delivery {
                accepted: 4,
                rejected: vec![]
            }
        );
        // A 413 with no packer (cannot split) gives the payload up.
        let (single, _) = p.pack(vec![entry("5")]).unwrap();
        let jobs = vec![Job {
            signal: 0u8,
            payload: single[0].clone(),
        }];
        let d = block_on(deliver(
            "t",
            &batch,
            jobs,
            &resume,
            |_| None,
            async |_: &Job<u8>| Err(Failure::TooLarge("413".into())),
        ))
        .unwrap();
        assert_eq!(
            d,
            Delivery {
                accepted: 0,
                rejected: vec!["413".into()]
            }
        );
    }
}
