//! The I/O part: appends lines to a file and rotates it by size.
//!
//! Rotation happens *before* a write that would make the current file larger than
//! `max_bytes`: `path.{N-1}` becomes `path.N` (the old `path.N` is replaced), ...,
//! `path` becomes `path.1`, and a new `path` is started. So `path` always holds the
//! newest lines, `path.1` the previous file, and at most `max_files` rotated files
//! are kept. Rotated files with numbers above `max_files` (left by an earlier config
//! with a larger `max_files`) are not touched.
//!
//! Lines are never split across files: the decision is taken per line, and a line
//! longer than `max_bytes` on its own is written alone into a fresh file.
//!
//! Writes go straight to the file (no user-space buffer), so once
//! [`RotatingFile::write_lines`] returns the data is in the kernel and survives a
//! crash of the agent; [`RotatingFile::flush`] also asks the kernel to put it on disk
//! (`fdatasync`). If a write fails, the file is cut back to its last complete line so
//! a retried batch does not leave half a line behind.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

/// An append-only file of newline-terminated lines, rotated by size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    /// The open current file; `None` after a failed write, reopened on the next one.
    file: Option<File>,
    /// Bytes of complete lines in the current file.
    size: u64,
    rotations: u64,
}

/// A failed [`RotatingFile::write_lines`]: the I/O error, and how many of the lines
/// were completely written before it (they are in the file or a rotated one).
#[derive(Debug)]
pub struct WriteError {
    /// Lines completely written before the failure.
    pub written: u64,
    /// What failed.
    pub source: io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (after {} lines)", self.source, self.written)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl RotatingFile {
    /// Opens (creating it if needed) `path` for appending. An existing file is kept
    /// and counted against `max_bytes`. `max_bytes` and `max_files` are clamped to at
    /// least 1 (the config rejects 0 before it gets here).
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        let mut w = RotatingFile {
            path: path.into(),
            max_bytes: max_bytes.max(1),
            max_files: max_files.max(1),
            file: None,
            size: 0,
            rotations: 0,
        };
        w.reopen()?;
        Ok(w)
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the current file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many rotations this writer performed.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// The path of rotated file number `n` (`path.n`).
    pub fn rotated_path(&self, n: u32) -> PathBuf {
        rotated(&self.path, n)
    }

    /// Appends each line followed by `\n`, rotating first whenever the next line
    /// would push the current file past `max_bytes`. Lines must not contain `\n`
    /// themselves. Consecutive lines that fit in the current file are written with a
    /// single `write_all`.
    pub fn write_lines<I, S>(&mut self, lines: I) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut chunk: Vec<u8> = Vec::new();
        // Lines in `chunk`, and lines already written by earlier chunks.
        let mut in_chunk = 0u64;
        let mut written = 0u64;
        for line in lines {
            let line = line.as_ref().as_bytes();
            debug_assert!(!line.contains(&b'\n'), "a line must not contain a newline");
            let len = line.len() as u64 + 1;
            let pending = self.size + chunk.len() as u64;
            if pending > 0 && pending + len > self.max_bytes {
                // Finish the current file, then start a new one for this line.
                self.write_chunk(&chunk)
                    .map_err(|source| WriteError { written, source })?;
                written += in_chunk;
                chunk.clear();
                in_chunk = 0;
                self.rotate()
                    .map_err(|source| WriteError { written, source })?;
            }
            chunk.extend_from_slice(line);
            chunk.push(b'\n');
            in_chunk += 1;
        }
        self.write_chunk(&chunk)
            .map_err(|source| WriteError { written, source })
    }

    /// Pushes written data to disk (`sync_data`).
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => {
                f.flush()?;
                f.sync_data()
            }
            None => Ok(()),
        }
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        let file = self.file.as_mut().expect("reopened above");
        match file.write_all(chunk) {
            Ok(()) => {
                self.size += chunk.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: drop the partial tail so the file ends on a complete
                // line, and reopen on the next write.
                let _ = file.set_len(self.size);
                self.file = None;
                Err(e)
            }
        }
    }

    /// Shifts `path.k` to `path.k+1` (dropping what falls beyond `max_files`), moves
    /// `path` to `path.1` and opens a new, empty `path`.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            // Whatever went into the closed file is on disk before it is renamed.
            let _ = f.sync_data();
        }
        // The first free slot, or `max_files` when every slot is taken (its file
        // is replaced by the rename below). Stopping at the first gap keeps older
        // files past the gap untouched.
        let mut free = 1;
        while free < self.max_files && rotated(&self.path, free).exists() {
            free += 1;
        }
        for k in (1..free).rev() {
            fs::rename(rotated(&self.path, k), rotated(&self.path, k + 1))?;
        }
        match fs::rename(&self.path, rotated(&self.path, 1)) {
            Ok(()) => {}
            // Someone removed the file under us: nothing to keep.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.rotations += 1;
        tracing::debug!(path = %self.path.display(), rotations = self.rotations, "rotated");
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }
}

/// `path.n`.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A scratch directory under the system temp dir, unique per process and test,
    /// removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "tfo-file-exporter-{}-{n}-{name}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn file(&self) -> PathBuf {
            self.0.join("out.ndjson")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    fn line(i: usize) -> String {
        // 9 bytes + newline = 10 bytes per line.
        format!("line-{i:04}")
    }

    #[test]
    fn appends_without_rotating_under_the_limit() {
        let s = Scratch::new("append");
        let mut w = RotatingFile::open(s.file(), 1000, 3).unwrap();
        w.write_lines(["a", "b"]).unwrap();
        w.write_lines(vec!["c".to_string()]).unwrap();
        w.flush().unwrap();
        assert_eq!(read(&s.file()), "a\nb\nc\n");
        assert_eq!(w.size(), 6);
        assert_eq!(w.rotations(), 0);
        assert!(!w.rotated_path(1).exists());
    }

    #[test]
    fn reopening_keeps_existing_content_and_size() {
        let s = Scratch::new("reopen");
        fs::write(s.file(), "old\n").unwrap();
        let mut w = RotatingFile::open(s.file(), 1000, 3).unwrap();
        assert_eq!(w.size(), 4);
        w.write_lines(["new"]).unwrap();
        assert_eq!(read(&s.file()), "old\nnew\n");
    }

    #[test]
    fn rotates_before_exceeding_and_never_splits_lines() {
        let s = Scratch::new("rotate");
        // 35 bytes: three 10-byte lines fit, the fourth would exceed.
        let mut w = RotatingFile::open(s.file(), 35, 10).unwrap();
        let all: Vec<String> = (0..10).map(line).collect();
        w.write_lines(&all).unwrap();
        w.flush().unwrap();

        // Oldest first: path.3, path.2, path.1, path.
        let files = [
            w.rotated_path(3),
            w.rotated_path(2),
            w.rotated_path(1),
            s.file(),
        ];
        let contents: Vec<String> = files.iter().map(|p| read(p)).collect();
        assert_eq!(
            contents,
            [
                "line-0000\nline-0001\nline-0002\n",
                "line-0003\nline-0004\nline-0005\n",
                "line-0006\nline-0007\nline-0008\n",
                "line-0009\n",
            ]
        );
        assert!(!w.rotated_path(4).exists());
        assert_eq!(w.rotations(), 3);
        for c in &contents {
            assert!(c.len() <= 35);
            assert!(c.ends_with('\n'));
        }
        // Every line exactly once, in order, across the files.
        let joined: Vec<&str> = contents.iter().flat_map(|c| c.lines()).collect();
        assert_eq!(joined, all);
    }

    #[test]
    fn rotation_across_calls_counts_existing_bytes() {
        let s = Scratch::new("calls");
        let mut w = RotatingFile::open(s.file(), 25, 5).unwrap();
        w.write_lines([line(0), line(1)]).unwrap(); // 20 bytes
        w.write_lines([line(2)]).unwrap(); // would be 30 > 25: rotate first
        assert_eq!(read(&w.rotated_path(1)), "line-0000\nline-0001\n");
        assert_eq!(read(&s.file()), "line-0002\n");
        // Reopen: the existing 10 bytes count.
        drop(w);
        let mut w = RotatingFile::open(s.file(), 25, 5).unwrap();
        w.write_lines([line(3)]).unwrap(); // 20 bytes, fits
        w.write_lines([line(4)]).unwrap(); // 30 > 25: rotate
        assert_eq!(read(&w.rotated_path(2)), "line-0000\nline-0001\n");
        assert_eq!(read(&w.rotated_path(1)), "line-0002\nline-0003\n");
        assert_eq!(read(&s.file()), "line-0004\n");
    }

    #[test]
    fn keeps_at_most_max_files_rotated_files() {
        let s = Scratch::new("maxfiles");
        // One line per file.
        let mut w = RotatingFile::open(s.file(), 10, 2).unwrap();
        for i in 0..6 {
            w.write_lines([line(i)]).unwrap();
        }
        assert_eq!(read(&s.file()), "line-0005\n");
        assert_eq!(read(&w.rotated_path(1)), "line-0004\n");
        assert_eq!(read(&w.rotated_path(2)), "line-0003\n");
        assert!(!w.rotated_path(3).exists());
        let names = fs::read_dir(&s.0).unwrap().count();
        assert_eq!(names, 3);
    }

    #[test]
    fn max_files_one_keeps_a_single_rotated_file() {
        let s = Scratch::new("one");
        let mut w = RotatingFile::open(s.file(), 10, 1).unwrap();
        w.write_lines([line(0), line(1), line(2)]).unwrap();
        assert_eq!(read(&s.file()), "line-0002\n");
        assert_eq!(read(&w.rotated_path(1)), "line-0001\n");
        assert!(!w.rotated_path(2).exists());
    }

    #[test]
    fn an_oversized_line_goes_alone_into_a_fresh_file() {
        let s = Scratch::new("oversized");
        let mut w = RotatingFile::open(s.file(), 10, 5).unwrap();
        let big = "x".repeat(25);
        w.write_lines(["a", big.as_str(), "b"]).unwrap();
        assert_eq!(read(&w.rotated_path(2)), "a\n");
        assert_eq!(read(&w.rotated_path(1)), format!("{big}\n"));
        assert_eq!(read(&s.file()), "b\n");
        // An empty file does not rotate, even for an oversized first line.
        let s2 = Scratch::new("oversized-first");
        let mut w = RotatingFile::open(s2.file(), 10, 5).unwrap();
        w.write_lines([big.as_str()]).unwrap();
        assert_eq!(w.rotations(), 0);
        assert_eq!(read(&s2.file()), format!("{big}\n"));
    }

    #[test]
    fn an_exact_fit_does_not_rotate() {
        let s = Scratch::new("exact");
        let mut w = RotatingFile::open(s.file(), 20, 5).unwrap();
        w.write_lines([line(0), line(1)]).unwrap();
        assert_eq!(w.rotations(), 0);
        assert_eq!(w.size(), 20);
        w.write_lines([line(2)]).unwrap();
        assert_eq!(w.rotations(), 1);
    }

    #[test]
    fn a_gap_in_rotated_files_is_filled_first() {
        let s = Scratch::new("gap");
        let mut w = RotatingFile::open(s.file(), 10, 3).unwrap();
        fs::write(w.rotated_path(1), "one\n").unwrap();
        fs::write(w.rotated_path(3), "three\n").unwrap();
        w.write_lines([line(0), line(1)]).unwrap();
        assert_eq!(read(&s.file()), "line-0001\n");
        assert_eq!(read(&w.rotated_path(1)), "line-0000\n");
        assert_eq!(read(&w.rotated_path(2)), "one\n");
        assert_eq!(read(&w.rotated_path(3)), "three\n");
    }

    #[test]
    fn recreates_a_file_removed_underneath() {
        let s = Scratch::new("removed");
        let mut w = RotatingFile::open(s.file(), 15, 2).unwrap();
        w.write_lines([line(0)]).unwrap();
        fs::remove_file(s.file()).unwrap();
        // The writer still holds the unlinked file: this write rotates, finds no
        // `path` to move, and starts a new file.
        w.write_lines([line(1)]).unwrap();
        assert_eq!(read(&s.file()), "line-0001\n");
        assert!(!w.rotated_path(1).exists());
    }

    #[test]
    fn open_fails_when_the_directory_is_missing() {
        let s = Scratch::new("missing");
        let err = RotatingFile::open(s.0.join("nope/out.ndjson"), 10, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_failed_write_reports_what_was_written() {
        // Linux's /dev/full accepts the open and fails every write with ENOSPC.
        if !Path::new("/dev/full").exists() {
            return;
        }
        let mut w = RotatingFile::open("/dev/full", 1000, 1).unwrap();
        let err = w.write_lines(["a", "b"]).unwrap_err();
        assert_eq!(err.written, 0);
        assert_eq!(err.source.raw_os_error(), Some(28), "{err}"); // ENOSPC
                                                                  // The handle was dropped and is reopened by the next write.
        assert!(w.write_lines(["c"]).is_err());
        assert!(w.write_lines(Vec::<String>::new()).is_ok());
    }
}
