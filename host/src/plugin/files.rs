//! Plugin files on disk: which names are plugins, the trust checks a file must pass
//! before the agent maps it, and a structural ELF check that keeps a truncated or
//! foreign file from crashing the process inside `dlopen`.

use std::{
    collections::HashSet,
    fs,
    io::Read,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// The platform's plugin file name for `name`: `libtfo_<name>.so` on Linux,
/// `libtfo_<name>.dylib` on macOS, `tfo_<name>.dll` on Windows.
pub fn file_name_for(name: &str) -> String {
    let stem = name.replace('-', "_");
    if cfg!(target_os = "windows") {
        format!("tfo_{stem}.dll")
    } else if cfg!(target_os = "macos") {
        format!("libtfo_{stem}.dylib")
    } else {
        format!("libtfo_{stem}.so")
    }
}

/// The plugin name a file name announces, or `None` when the file is not a plugin
/// file for this platform (temporary files and dotfiles included).
pub fn plugin_name_of(file_name: &str) -> Option<String> {
    if file_name.starts_with('.') {
        return None;
    }
    let (prefix, suffix) = if cfg!(target_os = "windows") {
        ("tfo_", ".dll")
    } else if cfg!(target_os = "macos") {
        ("libtfo_", ".dylib")
    } else {
        ("libtfo_", ".so")
    };
    let stem = file_name.strip_prefix(prefix)?.strip_suffix(suffix)?;
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
    /// Its bytes, read once: hashed, checked and copied from this same buffer so the
    /// file cannot change between the check and the load.
    pub bytes: Vec<u8>,
}

/// Checks that `path` may be loaded: a regular file (not a symlink), owned by the
/// agent's user or root, not writable by group or others, and (with an allow-list)
/// of an allowed sha256. Returns its bytes and hash.
pub fn trust(path: &Path, allow_sha256: Option<&HashSet<String>>) -> Result<TrustedFile, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err("refused: is a symbolic link (install the file itself)".into());
    }
    if !meta.file_type().is_file() {
        return Err("refused: not a regular file".into());
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "refused: writable by group or others (mode {:o}); chmod go-w it",
            mode & 0o7777
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "refused: owned by uid {}, not by the agent's user ({me}) or root",
            meta.uid()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    let sha256 = sha256_hex(&bytes);
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
        bytes,
    })
}

/// Hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Structural check before `dlopen`: an ELF shared object for this machine whose
/// segments and section headers lie inside the file. glibc maps segments without
/// checking them against the file size, and touching a page past the end of a
/// truncated file kills the process with SIGBUS; this check turns that into an error.
pub fn check_shared_object(bytes: &[u8]) -> Result<(), String> {
    use object::{
        elf,
        read::elf::{FileHeader, ProgramHeader},
        Endianness,
    };
    if bytes.is_empty() {
        return Err("not a shared library: the file is empty".into());
    }
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err("not a shared library: no ELF header".into());
    }
    let header = elf::FileHeader64::<Endianness>::parse(bytes)
        .map_err(|e| format!("not a 64-bit ELF file for this machine: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("bad ELF header: {e}"))?;
    let machine = header.e_machine(endian);
    let expected = if cfg!(target_arch = "x86_64") {
        elf::EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        elf::EM_AARCH64
    } else {
        machine
    };
    if machine != expected {
        return Err(format!(
            "built for another CPU architecture (ELF machine {machine}, this host {expected})"
        ));
    }
    if header.e_type(endian) != elf::ET_DYN {
        return Err("not a shared library (ELF type is not ET_DYN)".into());
    }
    let len = bytes.len() as u64;
    let segments = header
        .program_headers(endian, bytes)
        .map_err(|e| format!("truncated or corrupt: {e}"))?;
    if segments.is_empty() {
        return Err("corrupt: no program headers".into());
    }
    for ph in segments {
        let end = ph.p_offset(endian).checked_add(ph.p_filesz(endian));
        if end.is_none_or(|end| end > len) {
            return Err(format!(
                "truncated or corrupt: a segment ends at byte {} but the file has {len}",
                end.map(|e| e.to_string())
                    .unwrap_or_else(|| "overflow".into())
            ));
        }
    }
    let shoff = header.e_shoff(endian);
    let shsize = u64::from(header.e_shentsize(endian)) * u64::from(header.e_shnum(endian));
    if shoff != 0 && shoff.checked_add(shsize).is_none_or(|end| end > len) {
        return Err(format!(
            "truncated or corrupt: section headers end past the file's {len} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
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
