//! The disk buffer of one sink (`pipeline.buffer: disk`): a write-ahead log of the
//! batches the pipeline accepted for the sink, so that what was accepted survives a
//! backend outage longer than memory allows, an agent restart and a crash.
//!
//! Files in the sink's directory:
//! - `<first-seq, 20 digits>.wal`: segments of records, appended in sequence order.
//!   A record is `len: u32 LE | crc32: u32 LE | seq: u64 LE | items: u32 LE | payload`
//!   where the CRC-32 (IEEE, crc32fast) covers `seq | items | payload` and the payload
//!   is the batch in postcard encoding (serde derives of the plugin-api data model).
//! - `acked`: the sequence number up to which the sink confirmed delivery
//!   (`u64 LE | crc32 LE`), replaced atomically (write + rename).
//!
//! A record is acknowledged only when the sink confirmed it (export `Ok`) or refused
//! it permanently. On open, every record after the acknowledged position is replayed;
//! a record whose CRC does not match is skipped and counted, and a torn tail (an
//! incomplete record, or a length that cannot be right: a crash in the middle of a
//! write) is cut off and counted. Nothing here panics on bad file contents.
//!
//! Guarantees (docs/reliability.md): with `fsync: true` (the default) a batch is on
//! disk before it counts as accepted, so a crash loses nothing the pipeline accepted
//! for this sink. Acknowledgements are written without fsync: after a crash, batches
//! delivered in the last moments may be delivered again (at-least-once). When the
//! log would exceed `max_bytes`, the newest batch is refused and counted as dropped
//! (the data already on disk is older and was accepted first).

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

/// Record header: len, crc, seq, items.
const HEADER: usize = 4 + 4 + 8 + 4;
/// A single record larger than this is refused (a batch is far smaller).
const MAX_RECORD: u64 = 1 << 30;

/// Settings of a sink's disk buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskOptions {
    /// The sink's own directory (created 0700 if missing).
    pub dir: PathBuf,
    /// Size cap of the log on disk.
    pub max_bytes: u64,
    /// fdatasync each appended batch before accepting it.
    pub fsync: bool,
}

/// What opening found, for the log and the status.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OpenReport {
    /// Records waiting to be delivered (replayed).
    pub pending_records: u64,
    /// Items in them.
    pub pending_items: u64,
    /// Records skipped because their checksum did not match.
    pub corrupt_records: u64,
    /// Bytes cut off a torn or unreadable tail.
    pub truncated_bytes: u64,
}

/// A stored batch read back: sequence number, item count, payload.
pub type Record = (u64, u32, Vec<u8>);
/// A record that could not be read: its sequence number and why.
pub type Unreadable = (u64, String);

/// Why an append did not happen.
#[derive(Debug)]
pub enum AppendError {
    /// The log is at `max_bytes`.
    Full,
    /// The file system refused.
    Io(io::Error),
}

#[derive(Debug)]
struct RecordRef {
    seq: u64,
    offset: u64,
    len: u32,
    items: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    records: VecDeque<RecordRef>,
}

/// One sink's write-ahead log.
#[derive(Debug)]
pub struct DiskLog {
    opts: DiskOptions,
    segment_limit: u64,
    segments: VecDeque<Segment>,
    /// Open for appending: the last segment.
    writer: Option<File>,
    next_seq: u64,
    /// Every record with `seq < acked` is acknowledged.
    acked: u64,
    total_bytes: u64,
    /// Items in records at or after `acked`.
    pending_items: u64,
}

impl DiskLog {
    /// Opens (or creates) the log and indexes what is pending.
    pub fn open(opts: DiskOptions) -> io::Result<(DiskLog, OpenReport)> {
        create_private_dir(&opts.dir)?;
        let mut report = OpenReport::default();
        let acked = read_acked(&opts.dir.join("acked"));
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(&opts.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let stem = p.file_stem()?.to_str()?.to_string();
                (p.extension()? == "wal")
                    .then(|| stem.parse().ok().map(|n| (n, p)))
                    .flatten()
            })
            .collect();
        names.sort();
        let mut log = DiskLog {
            segment_limit: (opts.max_bytes / 8).clamp(64 << 10, 16 << 20),
            opts,
            segments: VecDeque::new(),
            writer: None,
            next_seq: acked,
            acked,
            total_bytes: 0,
            pending_items: 0,
        };
        for (_, path) in names {
            let seg = scan_segment(&path, &mut report)?;
            if let Some(last) = seg.records.back() {
                log.next_seq = log.next_seq.max(last.seq + 1);
            }
            if seg.records.back().is_none_or(|r| r.seq < acked) {
                // Fully delivered (or empty): no longer needed.
                let _ = fs::remove_file(&seg.path);
                continue;
            }
            log.total_bytes += seg.bytes;
            log.segments.push_back(seg);
        }
        for seg in &log.segments {
            for r in seg.records.iter().filter(|r| r.seq >= acked) {
                report.pending_records += 1;
                report.pending_items += u64::from(r.items);
            }
        }
        log.pending_items = report.pending_items;
        Ok((log, report))
    }

    /// The settings.
    pub fn options(&self) -> &DiskOptions {
        &self.opts
    }

    /// Sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// First unacknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Items in unacknowledged records.
    pub fn pending_items(&self) -> u64 {
        self.pending_items
    }

    /// The record with the smallest `seq >= from` (binary search: reads are
    /// sequential, a backlog can hold many records).
    fn find_from(&self, from: u64) -> Option<(&Segment, &RecordRef)> {
        let i = self
            .segments
            .partition_point(|s| s.records.back().is_none_or(|r| r.seq < from));
        let seg = self.segments.get(i)?;
        let j = seg.records.partition_point(|r| r.seq < from);
        Some((seg, seg.records.get(j)?))
    }

    /// Appends a batch; durable on return when `fsync` is set.
    pub fn append(&mut self, payload: &[u8], items: u64) -> Result<u64, AppendError> {
        let len = (HEADER + payload.len()) as u64;
        if len > MAX_RECORD || self.total_bytes + len > self.opts.max_bytes {
            return Err(AppendError::Full);
        }
        let rotate = match self.segments.back() {
            None => true,
            Some(s) => s.bytes > 0 && s.bytes + len > self.segment_limit,
        };
        if rotate || self.writer.is_none() {
            self.start_segment(rotate).map_err(AppendError::Io)?;
        }
        let seq = self.next_seq;
        let items = u32::try_from(items).unwrap_or(u32::MAX);
        let mut rec = Vec::with_capacity(len as usize);
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&[0; 4]);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&items.to_le_bytes());
        rec.extend_from_slice(payload);
        let crc = crc32fast::hash(&rec[8..]);
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
        let seg = self.segments.back_mut().expect("a segment is open");
        let w = self.writer.as_mut().expect("a segment is open");
        let offset = seg.bytes;
        if let Err(e) = w.write_all(&rec).and_then(|_| {
            if self.opts.fsync {
                w.sync_data()
            } else {
                Ok(())
            }
        }) {
            // A partial record may be on disk: cut it off so the next append starts
            // on a record boundary (open would otherwise drop everything after it).
            let _ = w.set_len(offset);
            return Err(AppendError::Io(e));
        }
        seg.bytes += len;
        seg.records.push_back(RecordRef {
            seq,
            offset,
            len: payload.len() as u32,
            items,
        });
        self.total_bytes += len;
        self.pending_items += u64::from(items);
        self.next_seq += 1;
        Ok(seq)
    }

    fn start_segment(&mut self, new_file: bool) -> io::Result<()> {
        if !new_file {
            if let Some(seg) = self.segments.back() {
                // Reopen the last segment for appending (after open()).
                self.writer = Some(OpenOptions::new().append(true).open(&seg.path)?);
                return Ok(());
            }
        }
        let path = self.opts.dir.join(format!("{:020}.wal", self.next_seq));
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        if self.opts.fsync {
            // The new directory entry must survive a crash too.
            File::open(&self.opts.dir).and_then(|d| d.sync_all())?;
        }
        self.writer = Some(f);
        self.segments.push_back(Segment {
            path,
            bytes: 0,
            records: VecDeque::new(),
        });
        Ok(())
    }

    /// The first record with `seq >= from` and its payload (`None`: nothing
    /// pending there). A record that cannot be read is returned as `Err` with its
    /// sequence number so the caller can count and skip it.
    pub fn read_from(&self, from: u64) -> Option<Result<Record, Unreadable>> {
        let (seg, r) = self.find_from(from)?;
        let read = || -> io::Result<Vec<u8>> {
            let f = File::open(&seg.path)?;
            let mut buf = vec![0; HEADER + r.len as usize];
            crate::plugin::platform::read_exact_at(&f, &mut buf, r.offset)?;
            let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
            if crc32fast::hash(&buf[8..]) != crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "checksum mismatch",
                ));
            }
            buf.drain(..HEADER);
            Ok(buf)
        };
        Some(
            read()
                .map(|b| (r.seq, r.items, b))
                .map_err(|e| (r.seq, format!("{}: {e}", seg.path.display()))),
        )
    }

    /// Marks every record up to and including `seq` delivered; deletes segments
    /// that hold nothing else.
    pub fn ack(&mut self, seq: u64) {
        if seq < self.acked {
            return;
        }
        let mut freed = 0u64;
        let mut from = self.acked;
        while let Some((_, r)) = self.find_from(from) {
            if r.seq > seq {
                break;
            }
            freed += u64::from(r.items);
            from = r.seq + 1;
        }
        self.pending_items = self.pending_items.saturating_sub(freed);
        self.acked = seq + 1;
        if let Err(e) = write_acked(&self.opts.dir, self.acked) {
            tracing::warn!(
                dir = %self.opts.dir.display(),
                "disk buffer: cannot record the delivery position ({e}); after a restart \
                 these batches would be sent again"
            );
        }
        while self.segments.len() > 1
            && self.segments[0]
                .records
                .back()
                .is_none_or(|r| r.seq < self.acked)
        {
            let seg = self.segments.pop_front().expect("len > 1");
            self.total_bytes -= seg.bytes;
            if let Err(e) = fs::remove_file(&seg.path) {
                tracing::warn!("disk buffer: cannot delete {}: {e}", seg.path.display());
            }
        }
        // The segment being written is fully delivered: start the next append in a
        // fresh one so this one can go.
        if let Some(seg) = self.segments.back() {
            if seg.bytes > self.segment_limit / 2
                && seg.records.back().is_none_or(|r| r.seq < self.acked)
            {
                let seg = self.segments.pop_back().expect("non-empty");
                self.writer = None;
                self.total_bytes -= seg.bytes;
                let _ = fs::remove_file(&seg.path);
            }
        }
    }
}

/// A batch as stored in a record (postcard). Shared by the queue and the fuzz target.
pub fn encode_batch(batch: &tfo_plugin_api::Batch) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(batch).map_err(|e| e.to_string())
}

/// The batch of a record; an error (never a panic) for bytes that are not one.
pub fn decode_batch(bytes: &[u8]) -> Result<tfo_plugin_api::Batch, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable batch: {e}"))
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    crate::plugin::platform::create_private_dir(dir)
}

/// Indexes a segment; skips records with a bad checksum and cuts off a torn tail.
fn scan_segment(path: &Path, report: &mut OpenReport) -> io::Result<Segment> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut seg = Segment {
        path: path.to_path_buf(),
        bytes: 0,
        records: VecDeque::new(),
    };
    let mut pos = 0usize;
    let mut last_seq: Option<u64> = None;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < HEADER {
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4")) as usize;
        if HEADER + len > rest.len() {
            break;
        }
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4"));
        let seq = u64::from_le_bytes(rest[8..16].try_into().expect("8"));
        let items = u32::from_le_bytes(rest[16..20].try_into().expect("4"));
        let body = &rest[8..HEADER + len];
        let in_order = last_seq.is_none_or(|l| seq > l);
        if crc32fast::hash(body) != crc || !in_order {
            // The length may be damaged too; the record is skipped either way, and
            // if the length was wrong the next header fails its checksum as well.
            report.corrupt_records += 1;
            pos += HEADER + len;
            continue;
        }
        seg.records.push_back(RecordRef {
            seq,
            offset: pos as u64,
            len: len as u32,
            items,
        });
        last_seq = Some(seq);
        pos += HEADER + len;
    }
    if pos < data.len() {
        report.truncated_bytes += (data.len() - pos) as u64;
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(pos as u64)?;
    }
    seg.bytes = pos as u64;
    Ok(seg)
}

fn read_acked(path: &Path) -> u64 {
    match fs::read(path) {
        Ok(b) if b.len() == 12 => {
            let v = u64::from_le_bytes(b[0..8].try_into().expect("8"));
            let crc = u32::from_le_bytes(b[8..12].try_into().expect("4"));
            if crc32fast::hash(&b[0..8]) == crc {
                return v;
            }
            tracing::warn!(
                "disk buffer: {} is damaged; replaying every batch on disk (some may be sent twice)",
                path.display()
            );
            0
        }
        Ok(_) => {
            tracing::warn!(
                "disk buffer: {} is damaged; replaying every batch on disk (some may be sent twice)",
                path.display()
            );
            0
        }
        Err(_) => 0,
    }
}

fn write_acked(dir: &Path, acked: u64) -> io::Result<()> {
    let mut b = acked.to_le_bytes().to_vec();
    b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
    let tmp = dir.join("acked.tmp");
    fs::write(&tmp, &b)?;
    fs::rename(&tmp, dir.join("acked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, max: u64) -> DiskOptions {
        DiskOptions {
            dir: dir.join("sink"),
            max_bytes: max,
            fsync: false,
        }
    }

    fn pending(log: &DiskLog) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut from = log.acked();
        while let Some(r) = log.read_from(from) {
            let (seq, _, b) = r.unwrap();
            out.push((seq, b));
            from = seq + 1;
        }
        out
    }

    #[test]
    fn appended_records_survive_reopen_until_acked() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, r) = DiskLog::open(opts(d.path(), 1 << 20)).unwrap();
        assert_eq!(r, OpenReport::default());
        for i in 0..5u8 {
            assert_eq!(log.append(&[i; 10], 2).unwrap(), u64::from(i));
        }
        log.ack(1);
        drop(log);
        let (log, r) = DiskLog::open(opts(d.path(), 1 << 20)).unwrap();
        assert_eq!(r.pending_records, 3);
        assert_eq!(r.pending_items, 6);
        let got = pending(&log);
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(got[0].1, vec![2u8; 10]);
        assert_eq!(log.next_seq(), 5);
    }

    #[test]
    fn the_cap_refuses_new_records() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(opts(d.path(), 200)).unwrap();
        let mut n = 0;
        while log.append(&[7; 50], 1).is_ok() {
            n += 1;
        }
        assert_eq!(n, 2, "two 70-byte records fit in 200 bytes");
        assert!(matches!(log.append(&[7; 50], 1), Err(AppendError::Full)));
        assert!(log.bytes() <= 200);
    }

    #[test]
    fn delivered_segments_are_deleted() {
        let d = tempfile::tempdir().unwrap();
        // A 512 KiB cap makes 64 KiB segments: 40 records of 10 KB fill several.
        let (mut log, _) = DiskLog::open(opts(d.path(), 512 << 10)).unwrap();
        for _ in 0..40 {
            log.append(&[1; 10_000], 1).unwrap();
        }
        let files = || fs::read_dir(d.path().join("sink")).unwrap().count();
        // 10,020-byte records, 6 per 64 KiB segment: 7 segments.
        assert_eq!(files(), 7);
        log.ack(19);
        // Records 0..=17 (three segments) are gone; 18..=39 remain, plus `acked`.
        assert_eq!(files(), 5);
        assert_eq!(log.pending_items(), 20);
        log.ack(39);
        assert!(files() <= 2, "{}", files()); // `acked` + at most one segment
        assert_eq!(log.pending_items(), 0);
        // Appending goes on after everything was deleted.
        assert_eq!(log.append(&[2; 10], 1).unwrap(), 40);
        drop(log);
        let (log, r) = DiskLog::open(opts(d.path(), 512 << 10)).unwrap();
        assert_eq!(r.pending_records, 1);
        assert_eq!(pending(&log)[0].0, 40);
    }

    #[test]
    fn a_torn_tail_and_a_flipped_byte_are_skipped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(opts(d.path(), 1 << 20)).unwrap();
        for i in 0..4u8 {
            log.append(&[i; 100], 1).unwrap();
        }
        drop(log);
        let seg = d.path().join("sink").join(format!("{:020}.wal", 0));
        let mut data = fs::read(&seg).unwrap();
        let rec = HEADER + 100;
        // Flip a payload byte of record 1; tear record 3 in half.
        data[rec + HEADER + 5] ^= 0xff;
        data.truncate(3 * rec + rec / 2);
        fs::write(&seg, &data).unwrap();
        let (mut log, r) = DiskLog::open(opts(d.path(), 1 << 20)).unwrap();
        assert_eq!(r.corrupt_records, 1);
        assert_eq!(r.truncated_bytes, (rec / 2) as u64);
        assert_eq!(r.pending_records, 2);
        let seqs: Vec<u64> = pending(&log).iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![0, 2]);
        // The log goes on: the next record follows the last good one.
        assert_eq!(log.append(&[9; 10], 1).unwrap(), 3);
        drop(log);
        let (log, r) = DiskLog::open(opts(d.path(), 1 << 20)).unwrap();
        assert_eq!(r.truncated_bytes, 0);
        let seqs: Vec<u64> = pending(&log).iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![0, 2, 3]);
    }

    #[test]
    fn garbage_files_never_panic() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("sink");
        fs::create_dir_all(&dir).unwrap();
        let mut seed = 0x9e3779b97f4a7c15u64;
        for i in 0..50 {
            let mut bytes = Vec::new();
            for _ in 0..(i * 37) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            fs::write(dir.join(format!("{:020}.wal", i)), &bytes).unwrap();
            fs::write(dir.join("acked"), &bytes[..bytes.len().min(12)]).unwrap();
            let (log, _) = DiskLog::open(opts(d.path(), 1 << 20)).unwrap();
            let _ = pending_lossy(&log);
        }
    }

    fn pending_lossy(log: &DiskLog) -> usize {
        let mut n = 0;
        let mut from = log.acked();
        while let Some(r) = log.read_from(from) {
            from = match r {
                Ok((s, _, _)) => s + 1,
                Err((s, _)) => s + 1,
            };
            n += 1;
        }
        n
    }
}
