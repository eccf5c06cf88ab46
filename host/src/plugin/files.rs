//! Plugin files on disk: which names are plugins, the trust checks a file must pass
//! before the agent maps it, and a structural object-file check (ELF on Linux, PE on
//! Windows) that keeps a truncated or foreign file from crashing the process inside
//! `dlopen`. What differs per platform lives in [`super::platform`].

use std::{
    collections::HashSet,
    fs,
    io::Read,
    path::{Path, PathBuf},
    time::SystemTime,
};

use sha2::{Digest, Sha256};

use super::{
    platform,
    shadow_cache::{Fingerprint, ShadowCache},
};

/// The platform's plugin file name for `name`: `libtfo_<name>.so` on Linux,
/// `libtfo_<name>.dylib` on macOS, `tfo_<name>.dll` on Windows.
pub fn file_name_for(name: &str) -> String {
    let stem = name.replace('-', "_");
    format!(
        "{}{stem}{}",
        platform::PLUGIN_FILE_PREFIX,
        platform::PLUGIN_FILE_SUFFIX
    )
}

/// The plugin name a file name announces, or `None` when the file is not a plugin
/// file for this platform (temporary files and dotfiles included).
pub fn plugin_name_of(file_name: &str) -> Option<String> {
    if file_name.starts_with('.') {
        return None;
    }
    let stem = file_name
        .strip_prefix(platform::PLUGIN_FILE_PREFIX)?
        .strip_suffix(platform::PLUGIN_FILE_SUFFIX)?;
    if stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    Some(normalize_name(stem))
}

/// Plugin names compare with `-` and `_` equal (cargo turns one into the other).
pub fn normalize_name(name: &str) -> String {
    name.replace('_', "-").to_ascii_lowercase()
}

/// Candidate plugin files in `dir`, sorted by path.
pub fn candidates(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        match plugin_name_of(file_name) {
            Some(name) => out.push((name, entry.path())),
            None => {
                tracing::debug!(file = %entry.path().display(), "not a plugin file name, ignored")
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// A file that passed the trust checks, with its content hash.
#[derive(Debug, Clone)]
pub struct TrustedFile {
    /// Where it is.
    pub path: PathBuf,
    /// Hex sha256 of its content.
    pub sha256: String,
    /// Where its content comes from when it is loaded.
    pub content: Content,
}

/// The content of a [`TrustedFile`].
#[derive(Debug, Clone)]
pub enum Content {
    /// Read now, once: hashed, checked and copied from this same buffer so the file
    /// cannot change between the check and the load.
    Read {
        /// The bytes.
        bytes: Vec<u8>,
        /// Its fingerprint, when it may be recorded in the shadow cache
        /// ([`Fingerprint::stable`]).
        fingerprint: Option<Fingerprint>,
    },
    /// Not read: the file is unchanged since its content, hashed `sha256`, was copied
    /// into the shadow cache, and that copy is what gets loaded.
    Cached,
}

impl TrustedFile {
    /// A file read without the trust checks (`tfo-agent plugins inspect --no-trust`).
    pub fn read(path: &Path, bytes: Vec<u8>) -> TrustedFile {
        TrustedFile {
            path: path.to_path_buf(),
            sha256: sha256_hex(&bytes),
            content: Content::Read {
                bytes,
                fingerprint: None,
            },
        }
    }
}

/// Checks that `path` may be loaded: a regular file (not a symlink), passing the
/// platform's owner/permission rule ([`platform::check_owner_and_mode`]: on Unix
/// owned by the agent's user or root and not writable by group or others; none on
/// Windows), and (with an allow-list) of an allowed sha256. Returns its bytes and
/// hash.
pub fn trust(path: &Path, allow_sha256: Option<&HashSet<String>>) -> Result<TrustedFile, String> {
    trust_with_cache(path, allow_sha256, None)
}

/// [`trust`], except that a file the shadow cache knows unchanged is not read: its
/// recorded hash is checked against the allow-list instead.
pub fn trust_with_cache(
    path: &Path,
    allow_sha256: Option<&HashSet<String>>,
    cache: Option<&ShadowCache>,
) -> Result<TrustedFile, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err("refused: is a symbolic link (install the file itself)".into());
    }
    if !meta.file_type().is_file() {
        return Err("refused: not a regular file".into());
    }
    platform::check_owner_and_mode(&meta)?;
    let (sha256, content) = match cache.and_then(|c| c.lookup(path, &meta)) {
        Some(sha256) => (sha256, Content::Cached),
        None => {
            let started = SystemTime::now();
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            let after = fs::File::open(path)
                .and_then(|mut f| {
                    f.read_to_end(&mut bytes)?;
                    f.metadata()
                })
                .map_err(|e| format!("cannot read: {e}"))?;
            let fingerprint = Fingerprint::stable(&meta, &after, started);
            (sha256_hex(&bytes), Content::Read { bytes, fingerprint })
        }
    };
    if let Some(allow) = allow_sha256 {
        if !allow.contains(&sha256) {
            return Err(format!(
                "refused: sha256 {sha256} is not in plugins.allow_sha256"
            ));
        }
    }
    Ok(TrustedFile {
        path: path.to_path_buf(),
        sha256,
        content,
    })
}

/// Hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Structural check before the library is mapped ([`platform::check_object_file`]:
/// ELF on Linux, PE on Windows), after refusing an empty file everywhere.
pub fn check_shared_object(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("not a shared library: the file is empty".into());
    }
    platform::check_object_file(bytes)
}

/// Linux names and ELF checks; the Windows ones are in `platform.rs`.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            plugin_name_of("libtfo_counting_sink.so").as_deref(),
            Some("counting-sink")
        );
        assert_eq!(plugin_name_of("libtfo_x.so.tmp"), None);
        assert_eq!(plugin_name_of(".libtfo_x.so"), None);
        assert_eq!(plugin_name_of("libz.so"), None);
        assert_eq!(plugin_name_of("libtfo_.so"), None);
        assert_eq!(file_name_for("file-exporter"), "libtfo_file_exporter.so");
    }

    #[test]
    fn elf_checks() {
        assert!(check_shared_object(b"").unwrap_err().contains("empty"));
        assert!(check_shared_object(b"hello world")
            .unwrap_err()
            .contains("ELF"));
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // A test binary is an executable (PIE is ET_DYN too), so only check that a
        // truncated copy is refused.
        let cut = &me[..me.len() / 2];
        assert!(
            check_shared_object(cut).unwrap_err().contains("truncated"),
            "{:?}",
            check_shared_object(cut)
        );
    }
}
