//! Loading a plugin library: shadow copy, ABI identity, abi_stable version and layout
//! checks, and retiring it again (dlclose, then proof from `/proc/self/maps` that it
//! is gone; on Windows `FreeLibrary`, then `GetModuleHandleExW`; see
//! [`super::platform`]).
//!
//! Loading follows DESIGN.md §3/§5: the file is copied to a private directory under a
//! name derived from its sha256 and a load counter (glibc would hand back an old
//! handle for a path it already knows), then opened with `RawLibrary::load_at`,
//! checked, and initialised through `init_root_module_with_unchecked_layout` after our
//! own layout check. The layout check runs with fresh checking globals each time:
//! abi_stable's process-wide cache keeps references into the checked library, which
//! would dangle once that library is unloaded.
//!
//! Version and layout rules are in docs/abi.md: the plugin's ABI version (symbol
//! `tfo_plugin_abi_version`) must have the host's major and a minor not newer than the
//! host's, and the layout check is run with the *plugin* as abi_stable's "interface"
//! and the host as its "implementation", because abi_stable lets only the interface
//! side have fewer trailing prefix-type fields (methods appended in a later minor).

use std::{
    ffi::CStr,
    fs,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use abi_stable::{
    abi_stability::abi_checking::{check_layout_compatibility_with_globals, CheckingGlobals},
    library::{abi_header_from_raw_library, IsLayoutChecked, RawLibrary, RootModule},
    StableAbi,
};
use serde::Serialize;
use tfo_plugin_api::{
    AbiMismatch, AbiVersion, DataTypes, PluginKind, PluginModRef, ABI_INFO, ABI_INFO_SYMBOL,
    ABI_VERSION, ABI_VERSION_SYMBOL,
};

use super::{
    files::{self, Content, TrustedFile},
    platform,
    shadow_cache::{Lease, ShadowCache},
};

/// A plugin's descriptor, copied into host memory.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Descriptor {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `source`, `sink` or `source+sink`.
    pub kind: &'static str,
    /// Data types it handles.
    pub data_types: Vec<&'static str>,
    /// One line about it.
    pub description: String,
    /// plugin-api version it was built against.
    pub plugin_api_version: String,
    #[serde(skip)]
    /// Kind as the enum, for routing.
    pub kind_enum: PluginKind,
    #[serde(skip)]
    /// Data types as flags, for routing.
    pub data_types_flags: DataTypes,
}

/// A loaded, checked plugin library. Dropping it closes the library: every object
/// that came from it must be gone first (the manager guarantees that by joining the
/// instance threads before it calls [`LoadedLibrary::unload`]).
pub struct LoadedLibrary {
    /// The descriptor (host copy).
    pub descriptor: Descriptor,
    /// sha256 of the file.
    pub sha256: String,
    /// The file it was loaded from (in the plugin directory).
    pub source_path: PathBuf,
    /// The copy that is mapped (private, or the shadow cache's).
    pub shadow_path: PathBuf,
    /// True when the file was not read for this load: the shadow cache knew it
    /// unchanged since its copy was kept.
    pub cached: bool,
    /// The ABI identity string the plugin exported.
    pub abi_info: String,
    /// The ABI version the plugin exported; `None` for a library built before
    /// plugin-api exported one (treated as 1.0, see [`plugin_abi_version`]).
    pub abi_version: Option<AbiVersion>,
    module: PluginModRef,
    raw: Option<Handles>,
    /// Set when `shadow_path` is the shadow cache's copy, which stays after unloading.
    lease: Option<Lease>,
}

/// The two references the host holds on a library: abi_stable's handle, and our
/// own `dlopen` with explicit flags (see [`set_bind_now`]) on the same mapping (none
/// on Windows: [`platform::FlagsHandle`]).
struct Handles {
    _abi: RawLibrary,
    _flags: platform::FlagsHandle,
}

impl std::fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedLibrary")
            .field("name", &self.descriptor.name)
            .field("sha256", &self.sha256)
            .field("shadow", &self.shadow_path)
            .finish()
    }
}

impl LoadedLibrary {
    /// The root module (valid while `self` lives).
    pub fn module(&self) -> PluginModRef {
        self.module
    }

    /// Closes the library and reports whether it really left the address space.
    /// The caller must have dropped every object the library created.
    pub fn unload(mut self) -> UnloadOutcome {
        let shadow = self.shadow_path.clone();
        let still_mapped = self.close();
        UnloadOutcome {
            shadow_path: shadow,
            still_mapped,
        }
    }

    /// dlclose, then removes a private copy, or hands a cached copy back to the cache,
    /// once the library has really left the address space. A library still mapped
    /// keeps its file (and its cached copy stays reserved) for good.
    fn close(&mut self) -> bool {
        drop(self.raw.take());
        let still_mapped = is_mapped(&self.shadow_path);
        match self.lease.take() {
            Some(lease) if still_mapped => std::mem::forget(lease),
            Some(lease) => drop(lease),
            None if !still_mapped => {
                let _ = fs::remove_file(&self.shadow_path);
            }
            None => {}
        }
        still_mapped
    }
}

impl Drop for LoadedLibrary {
    fn drop(&mut self) {
        if self.raw.is_some() {
            self.close();
        }
    }
}

/// What happened when a library was closed.
#[derive(Debug, Clone)]
pub struct UnloadOutcome {
    /// The shadow copy that was mapped.
    pub shadow_path: PathBuf,
    /// True when the file is still in `/proc/self/maps` after dlclose (on Windows:
    /// still a loaded module after `FreeLibrary`), because something still pins it,
    /// e.g. a thread-local destructor of a thread that never ended.
    pub still_mapped: bool,
}

/// True when `path` is still loaded in this process ([`platform::is_mapped`]).
pub fn is_mapped(path: &Path) -> bool {
    platform::is_mapped(path)
}

/// Why a file could not be loaded, in one line.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

static LOAD_COUNTER: AtomicU64 = AtomicU64::new(0);
static BIND_NOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// `RTLD_NOW` (the default: every symbol resolved at load, so a missing one is a
/// load error, not a crash later) or `RTLD_LAZY`; always with `RTLD_LOCAL`. An
/// earlier measurement blamed `RTLD_NOW` for ~35 KiB per load that unload did not
/// return; measured again with the heap trimmed before reading RSS
/// (host/tests/reload_leak.rs), 200 swaps under `RTLD_NOW` grow RSS by 0.2-0.3 MB in
/// all, i.e. that was freed heap glibc had kept, not a leak. Lazy binding stays
/// available for diagnosis. Windows has no lazy binding: there this has no effect.
pub fn set_bind_now(on: bool) {
    BIND_NOW.store(on, Ordering::Relaxed);
}

/// The host's own ABI identity (without the trailing NUL).
pub fn host_abi_info() -> &'static str {
    ABI_INFO.trim_end_matches('\0')
}

/// The ABI version a plugin is judged by: the one it exports, or 1.0 for a library
/// built before plugin-api exported `tfo_plugin_abi_version` (plugin-api 0.1.0 builds
/// of that time; the layout check still decides whether it really fits).
pub fn plugin_abi_version(exported: Option<AbiVersion>) -> AbiVersion {
    exported.unwrap_or(AbiVersion::new(1, 0))
}

/// The version rule in words: `Ok` with how the plugin relates to this host, or the
/// reason it is refused, naming both ABI versions.
pub fn abi_version_verdict(exported: Option<AbiVersion>) -> Result<String, String> {
    let host = ABI_VERSION;
    let plugin = plugin_abi_version(exported);
    let shown = match exported {
        Some(v) => format!("plugin ABI {v}"),
        None => "plugin ABI 1.0 (assumed: it exports no ABI version)".to_string(),
    };
    match host.accepts(plugin) {
        Ok(()) if plugin == host => Ok(format!("{shown}, host ABI {host}: same version")),
        Ok(()) => Ok(format!(
            "{shown}, host ABI {host}: older minor of the same major, accepted"
        )),
        Err(AbiMismatch::Major) => Err(format!(
            "{shown}, host ABI {host}: a different ABI major is never compatible; \
             rebuild the plugin against a tfo-plugin-api with ABI {}.x (x <= {})",
            host.major, host.minor
        )),
        Err(AbiMismatch::NewerMinor) => Err(format!(
            "{shown}, host ABI {host}: the plugin is newer than this host; \
             upgrade tfo-agent to one speaking ABI {plugin} or later, or rebuild the \
             plugin against ABI {host} or older"
        )),
    }
}

/// Copies a trusted file into `shadow_dir` and loads it with every check.
pub fn load(file: &TrustedFile, shadow_dir: &Path) -> Result<LoadedLibrary, LoadError> {
    load_cached(file, shadow_dir, None)
}

/// [`load`] through the shadow cache: a file read now is checked and its copy kept
/// in the cache, and the cache's copy is mapped, unless it already backs a loaded
/// library (then a private copy in `shadow_dir`, as without a cache).
pub fn load_cached(
    file: &TrustedFile,
    shadow_dir: &Path,
    cache: Option<&Arc<ShadowCache>>,
) -> Result<LoadedLibrary, LoadError> {
    if let Content::Read { bytes, .. } = &file.content {
        files::check_shared_object(bytes).map_err(LoadError)?;
    }
    let mut lease = None;
    if let Some(cache) = cache {
        if let Content::Read { bytes, fingerprint } = &file.content {
            if let Err(e) = cache.insert(&file.path, *fingerprint, &file.sha256, bytes) {
                tracing::warn!(dir = %cache.dir().display(), file = %file.path.display(),
                    "cannot keep a copy in the plugin cache, loading a private copy: {e}");
            }
        }
        lease = cache.lease(&file.sha256);
    }
    let shadow_path = match &lease {
        Some(l) => l.path().to_path_buf(),
        None => write_private_copy(file, shadow_dir, cache)?,
    };
    match load_shadow(&shadow_path) {
        Ok((raw, module, abi_info, abi_version)) => {
            let descriptor = read_descriptor(module);
            Ok(LoadedLibrary {
                descriptor,
                sha256: file.sha256.clone(),
                source_path: file.path.clone(),
                shadow_path,
                cached: matches!(file.content, Content::Cached),
                abi_info,
                abi_version,
                module,
                raw: Some(raw),
                lease,
            })
        }
        Err(e) => {
            if lease.is_none() {
                let _ = fs::remove_file(&shadow_path);
            }
            Err(e)
        }
    }
}

/// A fresh private copy of `file` in `shadow_dir`, from the bytes read or, for a
/// file the cache vouches for, from the cache's copy.
fn write_private_copy(
    file: &TrustedFile,
    shadow_dir: &Path,
    cache: Option<&Arc<ShadowCache>>,
) -> Result<PathBuf, LoadError> {
    let n = LOAD_COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = file
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let shadow_path = shadow_dir.join(format!(
        "{stem}-{}-{n}{}",
        &file.sha256[..16],
        platform::PLUGIN_FILE_SUFFIX
    ));
    let cached;
    let bytes = match (&file.content, cache) {
        (Content::Read { bytes, .. }, _) => bytes,
        (Content::Cached, Some(cache)) => {
            let from = cache.copy_path(&file.sha256);
            cached = fs::read(&from).map_err(|e| {
                LoadError(format!("cannot read cached copy {}: {e}", from.display()))
            })?;
            &cached
        }
        (Content::Cached, None) => {
            return Err(LoadError(
                "internal: a file known only to the plugin cache, without the cache".into(),
            ))
        }
    };
    platform::write_private(&shadow_path, bytes).map_err(|e| {
        LoadError(format!(
            "cannot write shadow copy {}: {e}",
            shadow_path.display()
        ))
    })?;
    Ok(shadow_path)
}

/// [`load`] on a new thread that is joined before this returns. Loading runs plugin
/// code (the root-module constructor, `descriptor`), and plugin code must only run on
/// threads that end: a plugin thread-local touched on a long-lived thread would keep
/// the library mapped forever (DESIGN.md §4).
pub fn load_on_fresh_thread(
    file: TrustedFile,
    shadow_dir: PathBuf,
    cache: Option<Arc<ShadowCache>>,
) -> Result<LoadedLibrary, LoadError> {
    std::thread::Builder::new()
        .name("tfo-load".into())
        .spawn(move || load_cached(&file, &shadow_dir, cache.as_ref()))
        .map_err(|e| LoadError(format!("cannot start loader thread: {e}")))?
        .join()
        .map_err(|_| LoadError("the loader thread panicked".into()))?
}

type Loaded = (Handles, PluginModRef, String, Option<AbiVersion>);

fn load_shadow(path: &Path) -> Result<Loaded, LoadError> {
    // SAFETY: loading runs the library's initialisers; the file passed the trust and
    // object-file checks, which is all the host can know before running its code.
    let now = unsafe { platform::open_with_flags(path, BIND_NOW.load(Ordering::Relaxed)) }
        .map_err(|e| LoadError(format!("cannot load: {}", first_line(&e))))?;
    let raw = RawLibrary::load_at(path)
        .map_err(|e| LoadError(format!("cannot load: {}", first_line(&e.to_string()))))?;
    // 1. Our identity symbol, read without touching any abi_stable type.
    let abi_info = unsafe {
        let sym = raw
            .get::<extern "C" fn() -> *const std::os::raw::c_char>(ABI_INFO_SYMBOL)
            .map_err(|_| {
                LoadError("not a tfo-agent plugin: it exports no tfo_plugin_abi_info symbol".into())
            })?;
        let ptr = sym();
        if ptr.is_null() {
            return Err(LoadError(
                "not a tfo-agent plugin: tfo_plugin_abi_info returned null".into(),
            ));
        }
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    };
    let incompatible = |detail: &str| {
        LoadError(format!(
            "incompatible ABI: built against {abi_info}, host speaks {}: {detail}",
            host_abi_info()
        ))
    };
    // 2. Our ABI version, also read without touching any abi_stable type: a plugin
    //    of another major (or a newer minor) is refused here, before its layout is
    //    read, with both versions in the message.
    let abi_version = unsafe {
        raw.get::<extern "C" fn() -> AbiVersion>(ABI_VERSION_SYMBOL)
            .ok()
            .map(|sym| sym())
    };
    abi_version_verdict(abi_version).map_err(|e| incompatible(&e))?;
    // 3. abi_stable's own header (its version, C ABI self-tests).
    let header = unsafe { abi_header_from_raw_library(&raw) }
        .map_err(|e| incompatible(&first_line(&e.to_string())))?
        .upgrade()
        .map_err(|e| incompatible(&first_line(&e.to_string())))?;
    // 4. Layout of the whole root module type tree, with throw-away globals. The
    //    plugin is passed as abi_stable's "interface" (expected) and the host as the
    //    "implementation" (found): abi_stable accepts a prefix type (the root
    //    module, the trait-object vtables) whose interface side has FEWER fields
    //    after `last_prefix_field` than the implementation side, and refuses the
    //    reverse (`too many fields`). The version rule above guarantees the plugin
    //    is the older side, so this lets a plugin built before a method was
    //    appended load; everything else (prefix length, every field and type,
    //    sizes, package versions) must match either way. Why the missing entries
    //    are safe to be missing: docs/abi.md.
    if let IsLayoutChecked::Yes(layout) = header.root_mod_consts().layout() {
        let globals = CheckingGlobals::new();
        check_layout_compatibility_with_globals(
            layout,
            <PluginModRef as StableAbi>::LAYOUT,
            &globals,
        )
        .map_err(|e| {
            if std::env::var_os("TFO_DEBUG_LAYOUT").is_some() {
                eprintln!("{e}");
            }
            incompatible(&summarize_layout_error(&e.to_string()))
        })?;
    } else {
        return Err(incompatible("the library carries no layout information"));
    }
    // 5. abi_stable's version rule (its strings are `0.<ABI major>.0`, so this is
    //    "same ABI major" again), then the module itself.
    let module = unsafe { header.init_root_module_with_unchecked_layout::<PluginModRef>() }
        .map_err(|e| incompatible(&first_line(&e.to_string())))?;
    let _ = <PluginModRef as RootModule>::NAME;
    Ok((
        Handles {
            _abi: raw,
            _flags: now,
        },
        module,
        abi_info,
        abi_version,
    ))
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// abi_stable prints the whole mismatching type tree; keep the offending type and
/// each error with the plugin's and the host's values (abi_stable's "expected" is the
/// plugin, "found" the host, see step 4 of `load_shadow`), e.g.
/// `layout of type Metric differs: incompatible type size (plugin 144, host 136)`.
fn summarize_layout_error(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).collect();
    let first_err = lines
        .iter()
        .position(|l| l.starts_with("Error:"))
        .unwrap_or(lines.len());
    let ty = lines[..first_err]
        .iter()
        .rposition(|l| l.starts_with("Layout of expected type"))
        .and_then(|i| {
            lines[i..first_err]
                .iter()
                .find_map(|l| l.strip_prefix("type:"))
        })
        .unwrap_or("?");
    let mut errs = Vec::new();
    let mut i = first_err;
    while i < lines.len() {
        if let Some(e) = lines[i].strip_prefix("Error:") {
            let expected = lines.get(i + 2).copied().unwrap_or("");
            let found = lines.get(i + 4).copied().unwrap_or("");
            if lines.get(i + 1) == Some(&"Expected:") && lines.get(i + 3) == Some(&"Found:") {
                errs.push(format!("{e} (plugin {expected}, host {found})"));
            } else {
                errs.push(e.to_string());
            }
        }
        i += 1;
    }
    if errs.is_empty() {
        errs.push("type layouts differ".into());
    }
    let out = format!("layout of type {ty} differs: {}", errs.join("; "));
    out.chars().take(400).collect()
}

fn read_descriptor(module: PluginModRef) -> Descriptor {
    let d = (module.descriptor())();
    // Copy everything into host-owned Strings; `d` is dropped (freed by the plugin)
    // right here, while the plugin is loaded.
    Descriptor {
        name: d.name.to_string(),
        version: d.version.to_string(),
        kind: d.kind.as_str(),
        data_types: d.data_types.names(),
        description: d.description.to_string(),
        plugin_api_version: d.plugin_api_version.to_string(),
        kind_enum: d.kind,
        data_types_flags: d.data_types,
    }
}

/// The result of `plugins inspect` for one file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file.
    pub file: PathBuf,
    /// Its sha256 (when readable).
    pub sha256: Option<String>,
    /// Whether the host can load it.
    pub compatible: bool,
    /// Why not, in one line.
    pub reason: Option<String>,
    /// The descriptor, when it loaded.
    pub descriptor: Option<Descriptor>,
    /// What the plugin says it was built against.
    pub abi_info: Option<String>,
    /// The plugin's ABI version (`1.0` when it exports none), when readable.
    pub abi_version: Option<String>,
    /// How the plugin's ABI version relates to the host's, in one line (also when
    /// a later check refused it), e.g. `plugin ABI 1.0, host ABI 1.1: older minor
    /// of the same major, accepted`.
    pub abi_compatibility: Option<String>,
    /// What this host speaks: its identity and ABI version.
    pub host_abi: String,
}

/// Loads `path` into a scratch shadow directory, reads its descriptor, and unloads
/// it; enables nothing.
pub fn inspect(path: &Path, shadow_dir: &Path, trust_checks: bool) -> Inspection {
    let mut out = Inspection {
        file: path.to_path_buf(),
        sha256: None,
        compatible: false,
        reason: None,
        descriptor: None,
        abi_info: None,
        abi_version: None,
        abi_compatibility: None,
        host_abi: format!("{}, ABI {}", host_abi_info(), ABI_VERSION),
    };
    let trusted = if trust_checks {
        files::trust(path, None)
    } else {
        fs::read(path)
            .map(|bytes| TrustedFile::read(path, bytes))
            .map_err(|e| format!("cannot read: {e}"))
    };
    let file = match trusted {
        Ok(f) => f,
        Err(e) => {
            out.reason = Some(e);
            return out;
        }
    };
    out.sha256 = Some(file.sha256.clone());
    match load(&file, shadow_dir) {
        Ok(lib) => {
            out.compatible = true;
            out.descriptor = Some(lib.descriptor.clone());
            out.abi_info = Some(lib.abi_info.clone());
            out.abi_version = Some(plugin_abi_version(lib.abi_version).to_string());
            out.abi_compatibility = abi_version_verdict(lib.abi_version).ok();
            lib.unload();
        }
        Err(e) => out.reason = Some(e.0),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_verdicts_name_both_versions() {
        let h = ABI_VERSION;
        let same = abi_version_verdict(Some(h)).unwrap();
        assert_eq!(same, format!("plugin ABI {h}, host ABI {h}: same version"));
        let major = abi_version_verdict(Some(AbiVersion::new(h.major + 1, 0))).unwrap_err();
        assert!(
            major.starts_with(&format!("plugin ABI {}.0, host ABI {h}: ", h.major + 1)),
            "{major}"
        );
        assert!(major.contains("different ABI major"), "{major}");
        let newer = abi_version_verdict(Some(AbiVersion::new(h.major, h.minor + 1))).unwrap_err();
        assert!(newer.contains("newer than this host"), "{newer}");
        if h.minor > 0 {
            let older = abi_version_verdict(Some(AbiVersion::new(h.major, 0))).unwrap();
            assert!(older.ends_with("older minor of the same major, accepted"));
        }
        // Built before the symbol existed: judged as 1.0, said so.
        let unversioned = abi_version_verdict(None);
        assert_eq!(
            h.accepts(AbiVersion::new(1, 0)).is_ok(),
            unversioned.is_ok()
        );
        let text = unversioned.unwrap_or_else(|e| e);
        assert!(text.starts_with("plugin ABI 1.0 (assumed"), "{text}");
    }

    #[test]
    fn layout_summary_labels_plugin_and_host() {
        let raw = "Layout of expected type:\n type:Metric\nError:incompatible type size\nExpected:\n144\nFound:\n136\n";
        assert_eq!(
            summarize_layout_error(raw),
            "layout of type Metric differs: incompatible type size (plugin 144, host 136)"
        );
    }
}
