//! Every difference between operating systems the host knows about, in one place, so
//! the rest of the agent is written once: plugin file names, the ownership and
//! permission trust rule, the object-file check before a library is mapped, how a
//! library is opened and how its unloading is verified, leftover plugin threads,
//! private files and directories, positional reads, the host name, the default
//! buffer directory and the process signals.
//!
//! Linux is the reference platform (DESIGN.md §3-§5). Windows (`x86_64-pc-windows-gnu`,
//! checked under wine by `scripts/windows-check.sh`) differs as follows, each
//! difference documented at its item:
//!
//! - plugin files are `tfo_<name>.dll` instead of `libtfo_<name>.so`;
//! - there is no owner/mode rule (Windows has ACLs, not mode bits): protect the
//!   plugin directory with its ACL and use `plugins.allow_sha256`;
//! - the structural check reads a PE image instead of an ELF file;
//! - the loader has no lazy binding, so there are no open flags to choose;
//! - a loaded `.dll` cannot be replaced or deleted: the shadow copy (loading a
//!   private copy, never the file in the plugin directory) is what lets a new
//!   version be dropped in while the old one runs; a shadow copy is deleted only
//!   after the library is gone;
//! - unloading is verified with `GetModuleHandleExW` instead of `/proc/self/maps`,
//!   and leftover plugin threads are found by their thread description;
//! - there is no SIGHUP: the config is reloaded when its file changes;
//! - file events come from notify 8 instead of 6 (see [`notify`]).

use std::{fs, io, path::Path};

/// The file-watching crate (inotify on Linux, ReadDirectoryChangesW on Windows).
/// Unix uses the workspace's notify 6. Windows uses notify 8: notify 6 reads
/// `FILE_NOTIFY_INFORMATION` records in place, wine packs them unaligned, and a
/// debug build then aborts on the misaligned read (notify-rs/notify#647). The API
/// the agent uses is the same in both.
#[cfg(unix)]
pub use notify;
/// See the Unix item: notify 8 on Windows.
#[cfg(windows)]
pub use notify_windows as notify;

/// The prefix of a plugin file name on this platform (`lib` on Unix, none on
/// Windows, following each platform's convention for cargo's `cdylib` output).
pub const PLUGIN_FILE_PREFIX: &str = if cfg!(windows) { "tfo_" } else { "libtfo_" };

/// The suffix of a plugin file name (and of its shadow copies) on this platform.
pub const PLUGIN_FILE_SUFFIX: &str = if cfg!(windows) {
    ".dll"
} else if cfg!(target_os = "macos") {
    ".dylib"
} else {
    ".so"
};

// --- trust: who may have written the file ------------------------------------------

/// How [`check_owner_and_mode`] judged a file that passed, for reports
/// (`plugins check`).
pub const OWNER_RULE: &str = if cfg!(windows) {
    "no owner/permission rule on Windows (protect the directory's ACL)"
} else {
    "safe permissions"
};

/// The ownership and permission rule a plugin file must pass on Unix: not writable by
/// group or others, owned by the agent's user or root. Anyone else who could write
/// the file could run code inside the agent.
#[cfg(unix)]
pub fn check_owner_and_mode(meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    Ok(())
}

/// On Windows there are no mode bits and ownership alone says little (files written
/// by an administrator belong to the Administrators group), and evaluating the
/// file's ACL against every principal is beyond what the host can judge reliably.
/// So this weaker rule applies: no owner/permission check. The plugin directory's
/// ACL must allow writes only to administrators and the agent's account, and
/// `plugins.allow_sha256` is the check that pins exactly which files may load.
#[cfg(windows)]
pub fn check_owner_and_mode(_meta: &fs::Metadata) -> Result<(), String> {
    Ok(())
}

// --- object file check before mapping ------------------------------------------------

/// Structural check before `dlopen`: an ELF shared object for this machine whose
/// segments and section headers lie inside the file. glibc maps segments without
/// checking them against the file size, and touching a page past the end of a
/// truncated file kills the process with SIGBUS; this check turns that into an error.
#[cfg(target_os = "linux")]
pub fn check_object_file(bytes: &[u8]) -> Result<(), String> {
    use object::{
        elf,
        read::elf::{FileHeader, ProgramHeader},
        Endianness,
    };
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

/// Structural check before `LoadLibraryExW`: a 64-bit PE image for this machine,
/// marked as a DLL, whose section data lies inside the file. The Windows loader
/// refuses most broken images by itself, but its errors ("%1 is not a valid Win32
/// application") do not say what is wrong; this check names it, like the ELF check.
#[cfg(windows)]
pub fn check_object_file(bytes: &[u8]) -> Result<(), String> {
    use object::{pe, read::pe::PeFile64, LittleEndian as LE};
    if bytes.len() < 2 || &bytes[..2] != b"MZ" {
        return Err("not a shared library: no PE (MZ) header".into());
    }
    let file = PeFile64::parse(bytes)
        .map_err(|e| format!("truncated or corrupt, or not a 64-bit PE image: {e}"))?;
    let header = &file.nt_headers().file_header;
    let machine = header.machine.get(LE);
    let expected = if cfg!(target_arch = "x86_64") {
        pe::IMAGE_FILE_MACHINE_AMD64
    } else if cfg!(target_arch = "aarch64") {
        pe::IMAGE_FILE_MACHINE_ARM64
    } else {
        machine
    };
    if machine != expected {
        return Err(format!(
            "built for another CPU architecture (PE machine {machine:#x}, this host {expected:#x})"
        ));
    }
    if header.characteristics.get(LE) & pe::IMAGE_FILE_DLL == 0 {
        return Err("not a shared library (PE image is not a DLL)".into());
    }
    let len = bytes.len() as u64;
    for section in file.section_table().iter() {
        let (offset, size) = section.pe_file_range();
        let end = u64::from(offset) + u64::from(size);
        if end > len {
            return Err(format!(
                "truncated or corrupt: a section ends at byte {end} but the file has {len}"
            ));
        }
    }
    Ok(())
}

/// Other Unix systems: no structural check (the loader is trusted with it).
#[cfg(not(any(target_os = "linux", windows)))]
pub fn check_object_file(_bytes: &[u8]) -> Result<(), String> {
    Ok(())
}

// --- opening and unloading libraries -------------------------------------------------

/// The host's own `dlopen` of a library, next to abi_stable's, holding it with flags
/// the host chose: `RTLD_NOW` or `RTLD_LAZY` (see `library::set_bind_now`), always
/// `RTLD_LOCAL` so one plugin's symbols never satisfy another's.
#[cfg(unix)]
pub struct FlagsHandle(#[allow(dead_code)] libloading::os::unix::Library);

/// Windows has no lazy binding (imports are always resolved at load time, like
/// `RTLD_NOW`) and no global symbol namespace (like `RTLD_LOCAL`): the default
/// `LoadLibraryExW` that abi_stable performs already behaves as the host wants, so
/// no second handle is taken.
#[cfg(windows)]
pub struct FlagsHandle(());

/// Opens `path` with the host's flags (see [`FlagsHandle`]).
///
/// # Safety
/// Loading runs the library's initialisers; the file must have passed the trust and
/// object-file checks.
#[cfg(unix)]
pub unsafe fn open_with_flags(path: &Path, bind_now: bool) -> Result<FlagsHandle, String> {
    let bind = if bind_now {
        libc::RTLD_NOW
    } else {
        libc::RTLD_LAZY
    };
    libloading::os::unix::Library::open(Some(path), bind | libc::RTLD_LOCAL)
        .map(FlagsHandle)
        .map_err(|e| e.to_string())
}

/// Windows: nothing to choose (see [`FlagsHandle`]).
///
/// # Safety
/// Nothing is loaded here; unsafe only to match the Unix signature.
#[cfg(windows)]
pub unsafe fn open_with_flags(_path: &Path, _bind_now: bool) -> Result<FlagsHandle, String> {
    Ok(FlagsHandle(()))
}

/// True when the library file `path` is still mapped in this process, read from
/// `/proc/self/maps` (elsewhere on Unix there is no such file: reports false).
#[cfg(unix)]
pub fn is_mapped(path: &Path) -> bool {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let needle = path.to_string_lossy();
    maps.lines()
        .any(|l| l.split_whitespace().nth(5).is_some_and(|p| p == needle))
}

/// True when a module loaded from `path` is still in this process, asked from the
/// loader with `GetModuleHandleExW` (without taking a reference).
#[cfg(windows)]
pub fn is_mapped(path: &Path) -> bool {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::System::LibraryLoader::{
        GetModuleHandleExW, GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
    };
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut module = std::ptr::null_mut();
    // SAFETY: `wide` is NUL-terminated and outlives the call; `module` is a valid
    // out pointer; UNCHANGED_REFCOUNT takes no reference that would need releasing.
    let found = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            wide.as_ptr(),
            &mut module,
        )
    };
    found != 0
}

// --- plugin threads -----------------------------------------------------------------

/// Threads of this process named `name` (from /proc/self/task/*/comm). Plugin
/// threads inherit the instance thread's name; one still alive after shutdown would
/// run unmapped code once the library is closed.
#[cfg(unix)]
pub fn threads_named(name: &str) -> Vec<String> {
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .filter(|c| c == name)
        .collect()
}

/// Threads of this process whose description (what Rust's thread names set on
/// Windows) is `name`, from a ToolHelp thread snapshot. Unlike Linux, Windows does
/// not pass a thread's name on to the threads it starts, so this finds threads the
/// SDK named after the instance, not anonymous ones a plugin started itself.
#[cfg(windows)]
pub fn threads_named(name: &str) -> Vec<String> {
    use windows_sys::Win32::{
        Foundation::{CloseHandle, LocalFree, INVALID_HANDLE_VALUE},
        System::{
            Diagnostics::ToolHelp::{
                CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD,
                THREADENTRY32,
            },
            Threading::{
                GetCurrentProcessId, GetThreadDescription, OpenThread,
                THREAD_QUERY_LIMITED_INFORMATION,
            },
        },
    };
    let mut out = Vec::new();
    // SAFETY: plain Win32 calls with valid arguments; every handle opened here is
    // closed here, and the description buffer is freed with LocalFree as documented.
    unsafe {
        let me = GetCurrentProcessId();
        let snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
        if snap == INVALID_HANDLE_VALUE {
            return out;
        }
        let mut entry: THREADENTRY32 = std::mem::zeroed();
        entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
        let mut ok = Thread32First(snap, &mut entry);
        while ok != 0 {
            if entry.th32OwnerProcessID == me {
                let thread = OpenThread(THREAD_QUERY_LIMITED_INFORMATION, 0, entry.th32ThreadID);
                if !thread.is_null() {
                    let mut desc = std::ptr::null_mut();
                    if GetThreadDescription(thread, &mut desc) >= 0 && !desc.is_null() {
                        let len = (0..).take_while(|&i| *desc.add(i) != 0).count();
                        let s = String::from_utf16_lossy(std::slice::from_raw_parts(desc, len));
                        if s == name {
                            out.push(s);
                        }
                        LocalFree(desc.cast());
                    }
                    CloseHandle(thread);
                }
            }
            ok = Thread32Next(snap, &mut entry);
        }
        CloseHandle(snap);
    }
    out
}

// --- private files and directories ---------------------------------------------------

/// Creates `path` (which must not exist) holding `bytes`, readable and executable by
/// the agent's user only (0500: nobody can modify a shadow copy while it is mapped).
/// Not synced: a per-process shadow copy does not outlive the process, so a crash
/// cannot leave one behind for a later load (the persistent cache syncs its copies
/// itself, [`super::shadow_cache`]).
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o500)
        .open(path)?;
    f.write_all(bytes)
}

/// Windows: creates `path` (which must not exist) holding `bytes` (not synced, as on
/// Unix). It
/// inherits the ACL of the private shadow directory; it is not marked read-only,
/// because a read-only file cannot be deleted once the library is unloaded, and
/// while the library is loaded Windows itself refuses to modify or delete it.
#[cfg(windows)]
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)
}

/// Creates `dir` and its parents; the last one is private to the agent's user
/// (0700) on Unix. On Windows it inherits its parent's ACL (put buffer directories
/// under a directory only the agent's account can read, as the default
/// `%ProgramData%\tfo-agent` is set up by the installer).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Reads exactly `buf.len()` bytes at `offset` of `f` without sharing a cursor
/// (`pread` on Unix; `ReadFile` with an offset on Windows, which moves this handle's
/// cursor, harmless because every reader opens its own handle).
pub fn read_exact_at(f: &fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match f.seek_read(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The default `pipeline.disk_buffer.path`: `/var/lib/tfo-agent/buffer` on Unix,
/// `%ProgramData%\tfo-agent\buffer` on Windows.
pub fn default_buffer_dir() -> std::path::PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        std::path::PathBuf::from(base)
            .join("tfo-agent")
            .join("buffer")
    }
    #[cfg(not(windows))]
    {
        std::path::PathBuf::from("/var/lib/tfo-agent/buffer")
    }
}

// --- the host name -------------------------------------------------------------------

/// The machine's host name (`gethostname`), or `localhost` when it cannot be read.
#[cfg(unix)]
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The machine's NetBIOS name from `COMPUTERNAME` (set by Windows for every
/// process, services included), or `localhost` when it is missing.
#[cfg(windows)]
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".into())
}

// --- process signals -----------------------------------------------------------------

/// What a process signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// Stop gracefully (SIGTERM, SIGINT; Ctrl-C, Ctrl-Break, console close, shutdown).
    Stop,
    /// Reload the config (SIGHUP; Windows has no equivalent).
    Reload,
}

/// The daemon's signal handlers, installed before anything else so an early signal
/// is never fatal.
#[cfg(unix)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// The daemon's console-event handlers (Windows has no SIGHUP: a config reload
/// follows a change of the config file).
#[cfg(windows)]
pub struct Signals {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime).
    #[cfg(unix)]
    pub fn install() -> io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Installs the handlers (inside a tokio runtime).
    #[cfg(windows)]
    pub fn install() -> io::Result<Signals> {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown};
        Ok(Signals {
            c: ctrl_c()?,
            brk: ctrl_break()?,
            close: ctrl_close()?,
            shutdown: ctrl_shutdown()?,
        })
    }

    /// Waits for the next signal.
    #[cfg(unix)]
    pub async fn recv(&mut self) -> SignalAction {
        tokio::select! {
            _ = self.term.recv() => SignalAction::Stop,
            _ = self.int.recv() => SignalAction::Stop,
            _ = self.hup.recv() => SignalAction::Reload,
        }
    }

    /// Waits for the next console event.
    #[cfg(windows)]
    pub async fn recv(&mut self) -> SignalAction {
        tokio::select! {
            _ = self.c.recv() => SignalAction::Stop,
            _ = self.brk.recv() => SignalAction::Stop,
            _ = self.close.recv() => SignalAction::Stop,
            _ = self.shutdown.recv() => SignalAction::Stop,
        }
    }
}

/// glibc's malloc settings for a long-running agent, applied once at `run` before any
/// thread starts (plugins share the process's malloc). By default glibc returns free
/// memory at the top of a heap to the kernel as soon as it exceeds a threshold that
/// adapts to the largest freed block; a receiver thread that builds and frees ~1.4 MB
/// per request then pays an `madvise` and ~350 page faults per request (measured on
/// the InfluxDB receiver: half of its CPU). Fixed thresholds stop that churn: blocks
/// up to 4 MiB come from the heaps, and up to 16 MiB of free space is kept at a heap's
/// top (memory the agent used at its peak anyway). Not applied when the operator set
/// `GLIBC_TUNABLES` (their malloc settings win). Returns whether it was applied.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() -> bool {
    if std::env::var_os("GLIBC_TUNABLES").is_some_and(|v| v.to_string_lossy().contains("malloc")) {
        return false;
    }
    // SAFETY: mallopt only changes allocator parameters; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20) == 1
    }
}

/// Other platforms keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() -> bool {
    false
}

/// Gives memory freed after a burst back to the kernel (`malloc_trim`). Called after
/// plugins are loaded: loading reads each plugin file into memory to hash and copy
/// it, and with the thresholds of [`tune_allocator`] that space would otherwise stay
/// resident for the life of the agent (~1.5 MiB with the default config).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only returns free pages; safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Nothing to do where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Linux: hands the agent's mapped code back to the kernel once start-up is over,
/// so that what stays resident is the code the agent keeps running, not everything
/// start-up touched. Each plugin is a library with its own copy of tokio, hyper,
/// rustls and serde; loading relocates and initialises all of them, parsing the
/// config and building TLS configurations run once, and every page fault of a file
/// maps up to 64 KiB around it: with the default config, 9.5 of the agent's 11 MiB
/// were such file-backed pages. This pages out every read-only file mapping
/// (`MADV_PAGEOUT`, Linux 5.4+; pages that other processes also map, such as libc's,
/// stay). It changes nothing a later access sees: code that runs again is faulted
/// back in once (measured with the default config: 9.6 -> 5.6-7.5 MiB file-backed
/// after a minute of collections and scrapes). Returns the bytes advised; `None`
/// when the kernel has no `MADV_PAGEOUT`.
#[cfg(target_os = "linux")]
pub fn page_out_code() -> Option<u64> {
    let maps = fs::read_to_string("/proc/self/maps").ok()?;
    let mut advised = 0u64;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(path)) = (f.next(), f.next(), f.nth(3)) else {
            continue;
        };
        if !path.starts_with('/') || perms.contains('w') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: advice on a range this process has mapped (read from its own maps);
        // MADV_PAGEOUT only changes what is resident now, never the contents a later
        // access sees. A range unmapped since the maps were read makes madvise fail
        // with ENOMEM, which is ignored.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        if r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            return None;
        }
        advised += (end - start) as u64;
    }
    Some(advised)
}

/// Elsewhere the kernel's own working-set trimming applies.
#[cfg(not(target_os = "linux"))]
pub fn page_out_code() -> Option<u64> {
    None
}

/// Resident file-backed memory of this process in KiB (`RssFile`), for the log line
/// after [`page_out_code`] and its test; `None` where there is no `/proc`.
pub fn resident_file_kib() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("RssFile:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn paging_out_code_lowers_resident_file_memory() {
        use std::os::fd::AsRawFd;
        // A 4 MiB read-only file mapping, every page touched.
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &vec![7u8; 4 << 20]).unwrap();
        f.sync_all().unwrap();
        let len = 4 << 20;
        // SAFETY: a fresh read-only private mapping of a file we own, unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let mut sum = 0u64;
        for off in (0..len).step_by(4096) {
            // SAFETY: inside the mapping.
            sum += u64::from(unsafe { std::ptr::read_volatile((p as *const u8).add(off)) });
        }
        assert_eq!(sum, 7 * (len / 4096) as u64);
        let before = resident_file_kib().unwrap();
        let Some(advised) = page_out_code() else {
            eprintln!("SKIP: this kernel has no MADV_PAGEOUT (Linux < 5.4)");
            return;
        };
        let after = resident_file_kib().unwrap();
        assert!(advised >= len as u64);
        assert!(
            after + 3 * 1024 < before,
            "resident file-backed memory {before} KiB -> {after} KiB"
        );
        // Nothing a later access sees changed.
        // SAFETY: inside the mapping.
        assert_eq!(
            unsafe { std::ptr::read_volatile((p as *const u8).add(len - 1)) },
            7
        );
        // SAFETY: unmapping what was mapped above.
        unsafe { libc::munmap(p, len) };
    }

    #[test]
    fn finds_named_threads_until_they_end() {
        let name = "tfoT-platform";
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                ready_tx.send(()).unwrap();
                let _ = stop_rx.recv();
            })
            .unwrap();
        ready_rx.recv().unwrap();
        assert_eq!(threads_named(name), vec![name.to_string()]);
        stop_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(threads_named(name).is_empty());
    }

    #[test]
    fn positional_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        let f = fs::File::open(&p).unwrap();
        let mut buf = [0u8; 4];
        read_exact_at(&f, &mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        let e = read_exact_at(&f, &mut buf, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn private_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a").join("b");
        create_private_dir(&d).unwrap();
        let p = d.join("x");
        write_private(&p, b"abc").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"abc");
        // create_new: an existing file is never overwritten.
        assert!(write_private(&p, b"def").is_err());
        // The shadow copy must be deletable after unload.
        fs::remove_file(&p).unwrap();
    }

    #[cfg(windows)]
    #[test]
    fn windows_names() {
        use crate::plugin::files::{file_name_for, plugin_name_of};
        assert_eq!(file_name_for("file-exporter"), "tfo_file_exporter.dll");
        assert_eq!(
            plugin_name_of("tfo_counting_sink.dll").as_deref(),
            Some("counting-sink")
        );
        assert_eq!(plugin_name_of("libtfo_x.so"), None);
        assert_eq!(plugin_name_of("tfo_x.dll.tmp"), None);
        assert_eq!(plugin_name_of(".tfo_x.dll"), None);
    }

    #[cfg(windows)]
    #[test]
    fn windows_pe_checks_and_module_lookup() {
        let exe = std::env::current_exe().unwrap();
        let me = fs::read(&exe).unwrap();
        assert!(check_object_file(&me).unwrap_err().contains("not a DLL"));
        // The same image marked as a DLL passes, and a truncated copy does not.
        let mut dll = me.clone();
        let pe = u32::from_le_bytes(dll[0x3c..0x40].try_into().unwrap()) as usize;
        let characteristics = pe + 4 + 18;
        dll[characteristics + 1] |= (object::pe::IMAGE_FILE_DLL >> 8) as u8;
        check_object_file(&dll).unwrap();
        assert!(check_object_file(&dll[..dll.len() / 2])
            .unwrap_err()
            .contains("truncated"));
        assert!(check_object_file(b"\x7fELF....")
            .unwrap_err()
            .contains("no PE"));
        assert!(is_mapped(&exe), "the running executable is a loaded module");
        assert!(!is_mapped(&exe.with_file_name("tfo_not_loaded.dll")));
    }
}
