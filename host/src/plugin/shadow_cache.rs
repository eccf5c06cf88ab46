//! Shadow copies kept across restarts, so that an unchanged plugin file is neither
//! read, hashed nor copied again when the agent starts or rescans its directory.
//!
//! Every load maps a private copy of the plugin file, because replacing a mapped file
//! in place would crash the agent. Without this cache every start reads,
//! sha256-hashes and writes every plugin file (99 MB for the 25 plugins of the
//! start-up benchmark), and every rescan reads and hashes them all again. The cache
//! remembers, per plugin file, what `stat` says about it (device, inode, size, mtime
//! and ctime: its [`Fingerprint`]) with the sha256 its content had, and keeps one
//! copy per content hash. A file whose fingerprint did not change has not been
//! written: any write moves its ctime, which no unprivileged program can set back
//! (git's index and rsync rely on the same). Two guards close the remaining gaps: an
//! entry is only recorded when the fingerprint was the same before and after the file
//! was read, and when the file's last change lies at least [`RACY_MARGIN`] before the
//! read began (file timestamps move in clock ticks, so a second write within the tick
//! of the first could otherwise keep the fingerprint: git's "racy clean" case).
//!
//! The directory belongs to one agent at a time: the agent takes an exclusive lock on
//! its `lock` file; another agent pointed at the same directory works without the
//! cache (private copies per load, as before). It must be a directory private to the
//! agent's user (0700); the agent refuses to use one that is not. Its content is
//! trusted like the agent's own disk buffer: whoever can write it already runs as the
//! agent's user. Linux and the other Unix systems only: Windows has no ctime.

use std::{
    collections::{BTreeMap, HashSet},
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use super::platform;

/// How long before a read a file must last have changed for its fingerprint to be
/// recorded: longer than any file-system timestamp tick.
pub const RACY_MARGIN: Duration = Duration::from_secs(2);

const INDEX: &str = "index.json";
const INDEX_VERSION: u32 = 1;

/// The cache directory under `base` (`plugins.shadow_dir`, the temp directory by
/// default): one per user, so agents of different users sharing `/tmp` never meet.
pub fn default_dir(base: &Path) -> PathBuf {
    #[cfg(unix)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    let user = unsafe { libc::geteuid() }.to_string();
    #[cfg(not(unix))]
    let user = "user";
    base.join(format!("tfo-agent-plugin-cache-{user}"))
}

/// What `stat` says about a file, enough to know it was not written since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    /// The fingerprint of `meta`; `None` where the platform has no ctime (Windows).
    #[cfg(unix)]
    pub fn of(meta: &fs::Metadata) -> Option<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        Some(Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// Windows has no ctime that a write is guaranteed to move: no fingerprint.
    #[cfg(not(unix))]
    pub fn of(_meta: &fs::Metadata) -> Option<Fingerprint> {
        None
    }

    /// The fingerprint of a file read between `before` and `after` (its metadata on
    /// both sides of the read) starting at `read_started`, when it may be recorded:
    /// unchanged during the read and last changed at least [`RACY_MARGIN`] earlier.
    pub fn stable(
        before: &fs::Metadata,
        after: &fs::Metadata,
        read_started: SystemTime,
    ) -> Option<Fingerprint> {
        let fp = Fingerprint::of(before)?;
        if Fingerprint::of(after)? != fp {
            return None;
        }
        let limit = read_started
            .checked_sub(RACY_MARGIN)?
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?;
        let limit = (limit.as_secs() as i64, i64::from(limit.subsec_nanos()));
        (fp.mtime.max(fp.ctime) <= limit).then_some(fp)
    }
}

/// One plugin file as it was last read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    fingerprint: Fingerprint,
    sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    leased: HashSet<String>,
    dirty: bool,
}

/// A private directory of verified plugin copies, one per content hash, with an
/// index from plugin file to fingerprint and hash (see the module documentation).
#[derive(Debug)]
pub struct ShadowCache {
    dir: PathBuf,
    _lock: fs::File,
    state: Mutex<State>,
}

/// The copy of one content hash, reserved for one loaded library: `dlopen` of a path
/// that is already loaded returns the loaded library, so each copy backs at most one
/// library at a time and a second load of the same content gets a private copy.
#[derive(Debug)]
pub struct Lease {
    cache: Arc<ShadowCache>,
    sha256: String,
    path: PathBuf,
}

impl Lease {
    /// The copy to map.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.cache.lock().leased.remove(&self.sha256);
    }
}

impl ShadowCache {
    /// Opens (creating it 0700) the cache directory `dir` and takes its lock.
    /// `Ok(None)` when another agent holds it or the platform has no fingerprints;
    /// an error (the caller goes on without a cache) when it is not private to us.
    pub fn open(dir: &Path) -> Result<Option<Arc<ShadowCache>>, String> {
        if cfg!(not(unix)) {
            return Ok(None);
        }
        let show = dir.display();
        platform::create_private_dir(dir).map_err(|e| format!("cannot create {show}: {e}"))?;
        let meta = fs::symlink_metadata(dir).map_err(|e| format!("cannot stat {show}: {e}"))?;
        if !meta.file_type().is_dir() {
            return Err(format!("{show} is not a directory (a symbolic link?)"));
        }
        check_private(&meta).map_err(|e| format!("{show}: {e}"))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| format!("cannot open {show}/lock: {e}"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(format!("cannot lock {show}/lock: {e}")),
        }
        let entries = match fs::read(dir.join(INDEX)) {
            Ok(bytes) => match serde_json::from_slice::<IndexFile>(&bytes) {
                Ok(i) if i.version == INDEX_VERSION => i.entries,
                Ok(i) => {
                    tracing::info!(dir = %show, version = i.version, "plugin cache index of another version, starting empty");
                    BTreeMap::new()
                }
                Err(e) => {
                    tracing::warn!(dir = %show, "plugin cache index unreadable ({e}), starting empty");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {show}/{INDEX}: {e}")),
        };
        // Leftovers of a write that was interrupted.
        if let Ok(list) = fs::read_dir(dir) {
            for e in list.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Some(Arc::new(ShadowCache {
            dir: dir.to_path_buf(),
            _lock: lock,
            state: Mutex::new(State {
                entries,
                ..State::default()
            }),
        })))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the copy of the content hashed `sha256` is kept.
    pub fn copy_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}{}", platform::PLUGIN_FILE_SUFFIX))
    }

    /// The sha256 recorded for `path` when `meta` (its metadata now) has the recorded
    /// fingerprint and the copy of that content is in place.
    pub fn lookup(&self, path: &Path, meta: &fs::Metadata) -> Option<String> {
        let fp = Fingerprint::of(meta)?;
        let key = path.to_str()?;
        let sha256 = {
            let st = self.lock();
            let e = st.entries.get(key)?;
            if e.fingerprint != fp {
                return None;
            }
            e.sha256.clone()
        };
        let copy = fs::symlink_metadata(self.copy_path(&sha256)).ok()?;
        (copy.file_type().is_file() && copy.len() == fp.size).then_some(sha256)
    }

    /// Keeps `bytes` (the content of `path`, hashed `sha256`) as the copy of that
    /// hash unless it is already there, and records `fingerprint` for `path` when
    /// it is stable ([`Fingerprint::stable`]). The copy is written to a temporary
    /// name, synced and renamed, so a copy under its final name is always complete.
    pub fn insert(
        &self,
        path: &Path,
        fingerprint: Option<Fingerprint>,
        sha256: &str,
        bytes: &[u8],
    ) -> io::Result<()> {
        let copy = self.copy_path(sha256);
        let present = fs::symlink_metadata(&copy)
            .is_ok_and(|m| m.file_type().is_file() && m.len() == bytes.len() as u64);
        if !present {
            let tmp = self
                .dir
                .join(format!("{sha256}.{}.tmp", std::process::id()));
            let _ = fs::remove_file(&tmp);
            platform::write_private(&tmp, bytes)?;
            fs::File::open(&tmp)?.sync_all()?;
            if let Err(e) = fs::rename(&tmp, &copy) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
        if let (Some(fingerprint), Some(key)) = (fingerprint, path.to_str()) {
            let entry = Entry {
                fingerprint,
                sha256: sha256.to_string(),
            };
            let mut st = self.lock();
            if st.entries.get(key) != Some(&entry) {
                st.entries.insert(key.to_string(), entry);
                st.dirty = true;
            }
        }
        Ok(())
    }

    /// Reserves the copy of `sha256` for one load; `None` when it is missing or
    /// already backs a loaded library.
    pub fn lease(self: &Arc<Self>, sha256: &str) -> Option<Lease> {
        let path = self.copy_path(sha256);
        let mut st = self.lock();
        if st.leased.contains(sha256) || !path.is_file() {
            return None;
        }
        st.leased.insert(sha256.to_string());
        Some(Lease {
            cache: self.clone(),
            sha256: sha256.to_string(),
            path,
        })
    }

    /// After a scan: forgets files that are no longer `present`, deletes copies that
    /// no entry and no loaded library uses, and saves the index if it changed.
    pub fn retain(&self, present: &HashSet<PathBuf>) {
        let mut st = self.lock();
        let before = st.entries.len();
        st.entries.retain(|k, _| present.contains(Path::new(k)));
        if st.entries.len() != before {
            st.dirty = true;
        }
        let used: HashSet<&str> = st
            .entries
            .values()
            .map(|e| e.sha256.as_str())
            .chain(st.leased.iter().map(String::as_str))
            .collect();
        if let Ok(list) = fs::read_dir(&self.dir) {
            for e in list.flatten() {
                let name = e.file_name();
                let Some(sha) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(platform::PLUGIN_FILE_SUFFIX))
                else {
                    continue;
                };
                if !used.contains(sha) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if st.dirty {
            let index = IndexFile {
                version: INDEX_VERSION,
                entries: st.entries.clone(),
            };
            match self.save(&index) {
                Ok(()) => st.dirty = false,
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), "cannot save the plugin cache index: {e}")
                }
            }
        }
    }

    fn save(&self, index: &IndexFile) -> io::Result<()> {
        let bytes = serde_json::to_vec(index).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!("{INDEX}.{}.tmp", std::process::id()));
        fs::write(&tmp, bytes)?;
        fs::rename(&tmp, self.dir.join(INDEX))
    }
}

#[cfg(unix)]
fn check_private(meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = meta.permissions().mode() & 0o777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "owned by uid {}, not by the agent's user ({me}); not used",
            meta.uid()
        ));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "accessible to group or others (mode {mode:o}); not used (chmod 700 it)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn old_file(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, fs::Metadata) {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        let m = fs::metadata(&p).unwrap();
        (p, m)
    }

    /// A read that began `RACY_MARGIN` + 1 s after the file was written.
    fn later(m: &fs::Metadata) -> SystemTime {
        m.modified().unwrap() + RACY_MARGIN + Duration::from_secs(1)
    }

    #[test]
    fn an_unchanged_file_is_found_again_after_a_restart() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        let (p, m) = old_file(t.path(), "libtfo_x.so", b"content one");
        let fp = Fingerprint::stable(&m, &m, later(&m));
        assert!(fp.is_some());
        {
            let c = ShadowCache::open(&dir).unwrap().unwrap();
            assert_eq!(c.lookup(&p, &m), None, "nothing recorded yet");
            c.insert(&p, fp, "aa11", b"content one").unwrap();
            assert_eq!(c.lookup(&p, &m).as_deref(), Some("aa11"));
            c.retain(&HashSet::from([p.clone()]));
        }
        let c = ShadowCache::open(&dir).unwrap().unwrap();
        assert_eq!(
            c.lookup(&p, &m).as_deref(),
            Some("aa11"),
            "index saved and read back"
        );
        assert_eq!(fs::read(c.copy_path("aa11")).unwrap(), b"content one");
    }

    #[test]
    fn a_written_file_misses_even_with_the_same_size() {
        let t = tempfile::tempdir().unwrap();
        let c = ShadowCache::open(&t.path().join("cache")).unwrap().unwrap();
        let (p, m) = old_file(t.path(), "libtfo_x.so", b"content one");
        c.insert(
            &p,
            Fingerprint::stable(&m, &m, later(&m)),
            "aa11",
            b"content one",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(20)); // let the clock tick for ctime
        fs::write(&p, b"content two").unwrap();
        let m2 = fs::metadata(&p).unwrap();
        assert_eq!(m2.len(), m.len());
        assert_eq!(c.lookup(&p, &m2), None);
    }

    #[test]
    fn racy_or_changing_files_are_not_recorded() {
        let t = tempfile::tempdir().unwrap();
        let (p, m) = old_file(t.path(), "libtfo_x.so", b"one");
        // read right after the write: racy
        assert_eq!(Fingerprint::stable(&m, &m, m.modified().unwrap()), None);
        // changed during the read
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&p, b"two, longer").unwrap();
        let m2 = fs::metadata(&p).unwrap();
        assert_eq!(Fingerprint::stable(&m, &m2, later(&m2)), None);
        assert!(Fingerprint::stable(&m2, &m2, later(&m2)).is_some());
    }

    #[test]
    fn one_agent_at_a_time_and_only_a_private_directory() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        let first = ShadowCache::open(&dir).unwrap();
        assert!(first.is_some());
        assert!(ShadowCache::open(&dir).unwrap().is_none(), "second holder");
        drop(first);
        assert!(ShadowCache::open(&dir).unwrap().is_some(), "lock released");

        use std::os::unix::fs::PermissionsExt;
        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let e = ShadowCache::open(&open).unwrap_err();
        assert!(e.contains("group or others"), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = ShadowCache::open(&link).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn a_copy_backs_one_library_at_a_time_and_unused_copies_go() {
        let t = tempfile::tempdir().unwrap();
        let c = ShadowCache::open(&t.path().join("cache")).unwrap().unwrap();
        let (p, m) = old_file(t.path(), "libtfo_x.so", b"one");
        c.insert(&p, Fingerprint::stable(&m, &m, later(&m)), "aa11", b"one")
            .unwrap();
        let lease = c.lease("aa11").unwrap();
        assert!(c.lease("aa11").is_none(), "already backing a library");
        // the file is gone from the plugin directory, but the copy is still mapped
        c.retain(&HashSet::new());
        assert!(lease.path().is_file());
        assert_eq!(c.lookup(&p, &m), None);
        drop(lease);
        c.retain(&HashSet::new());
        assert!(!c.copy_path("aa11").exists());
        assert!(c.lease("aa11").is_none());
    }

    #[test]
    fn a_corrupt_index_starts_empty() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        drop(ShadowCache::open(&dir).unwrap());
        fs::write(dir.join(INDEX), b"{not json").unwrap();
        let c = ShadowCache::open(&dir).unwrap().unwrap();
        assert!(c.lock().entries.is_empty());
    }
}
