//! # tfo-plugin-api
//!
//! The only crate the tfo-agent host and its plugins share. The binary contract has
//! its own version, [`ABI_VERSION`] (`major.minor`, docs/abi.md), independent of this
//! crate's semver: a plugin loads when its ABI major equals the host's and its ABI
//! minor is not newer, and the host checks every type's layout before it calls any
//! plugin function.
//!
//! It holds:
//! - [`data`]: the FFI-safe telemetry model (OpenTelemetry-aligned);
//! - [`contract`]: descriptor, errors, health, the instance trait object
//!   ([`PluginInstance`]), the host callbacks ([`HostServices`]) and the root module
//!   ([`PluginMod`]);
//! - [`sdk`] (feature `sdk`, on by default): what a plugin author uses: the
//!   [`export_plugin!`] macro, the [`sdk::Plugin`] trait, panic guards on every entry
//!   point, an instance-owned tokio runtime, and a `tracing` bridge to the host's log.
//!
//! ## A complete minimal plugin
//!
//! `Cargo.toml`:
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//! name = "tfo_stdout_counter"      # the file becomes libtfo_stdout_counter.so
//! [dependencies]
//! tfo-plugin-api = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//! `src/lib.rs`:
//! ```no_run
//! use serde::Deserialize;
//! use tfo_plugin_api::prelude::*;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     #[serde(default)]
//!     prefix: String,
//! }
//!
//! pub struct Counter {
//!     prefix: String,
//!     seen: u64,
//! }
//!
//! impl Plugin for Counter {
//!     fn export(&mut self, _ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
//!         self.seen += batch.item_count();
//!         tracing::info!(total = self.seen, "{}batch received", self.prefix);
//!         Ok(ExportOk { accepted: batch.item_count() })
//!     }
//! }
//!
//! fn create(_ctx: &Context, config: Config) -> Result<Counter, CreateError> {
//!     Ok(Counter { prefix: config.prefix, seen: 0 })
//! }
//!
//! tfo_plugin_api::export_plugin! {
//!     name: "stdout-counter",
//!     version: env!("CARGO_PKG_VERSION"),
//!     kind: PluginKind::Sink,
//!     data_types: DataTypes::ALL,
//!     description: "counts what it receives",
//!     create: create,
//! }
//! ```
//! Build with `cargo build --release`, then install with a rename so the agent never
//! sees a half-written file: `cp target/release/libtfo_stdout_counter.so
//! $DIR/libtfo_stdout_counter.so.tmp && mv $DIR/libtfo_stdout_counter.so.tmp
//! $DIR/libtfo_stdout_counter.so`.
#![warn(missing_docs)]

pub mod contract;
pub mod data;
#[cfg(feature = "sdk")]
pub mod sdk;
#[cfg(feature = "testing")]
pub mod testing;

pub use contract::*;
pub use data::*;

/// Re-exports the generated macros and the crates they need, so plugin crates do not
/// have to depend on them directly.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}

#[cfg(not(feature = "abi-break-fixture"))]
macro_rules! layout_tag {
    () => {
        "standard"
    };
}
#[cfg(feature = "abi-break-fixture")]
macro_rules! layout_tag {
    () => {
        "abi-break-fixture"
    };
}

/// The ABI identity string a plugin library exports as the C symbol
/// `tfo_plugin_abi_info` (NUL-terminated). It is read before any abi_stable type is
/// touched, so the host can say which plugin-api a refused plugin was built against.
pub const ABI_INFO: &str = concat!(
    "tfo-plugin-api ",
    env!("CARGO_PKG_VERSION"),
    " layout=",
    layout_tag!(),
    "\0"
);

/// Name of the exported C function that returns a pointer to [`ABI_INFO`].
pub const ABI_INFO_SYMBOL: &[u8] = b"tfo_plugin_abi_info\0";

/// Version of this crate (its Rust API, semver). Shown to users. Its cargo
/// compatibility class (`0.y`) moves with the ABI major and only with it, because
/// abi_stable's layout check compares every type's package version with cargo's rule
/// (docs/abi.md); the host's version rule compares [`ABI_VERSION`].
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of the binary contract between host and plugins (docs/abi.md).
///
/// Kept apart from the crate version because they answer different questions: the
/// crate version says whether plugin *source* still compiles; this says whether a
/// plugin *binary* still loads. A minor step only appends (a trait method with a
/// default after `last_prefix_field`, a root-module field after the prefix); a major
/// step is anything else. The layout of this struct and the symbol that returns it
/// never change, so any host can read any plugin's ABI version.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Incompatible changes: a plugin loads only in a host with the same major.
    pub major: u32,
    /// Appended items: a plugin loads in a host with the same or a newer minor.
    pub minor: u32,
}

impl AbiVersion {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32) -> Self {
        AbiVersion { major, minor }
    }

    /// The loading rule, with `self` the host's version: same major, and the plugin's
    /// minor not newer than the host's (a newer plugin may need host behaviour this
    /// host does not have, and its extra trailing items are not checked by it).
    pub fn accepts(self, plugin: AbiVersion) -> Result<(), AbiMismatch> {
        if plugin.major != self.major {
            Err(AbiMismatch::Major)
        } else if plugin.minor > self.minor {
            Err(AbiMismatch::NewerMinor)
        } else {
            Ok(())
        }
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why [`AbiVersion::accepts`] refused a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiMismatch {
    /// Different major: never loadable; rebuild the plugin against this host's major.
    Major,
    /// Same major, newer minor than the host: upgrade the host (or rebuild the plugin
    /// against an older plugin-api).
    NewerMinor,
}

/// This plugin-api's ABI version. 1.0: the first versioned contract; 1.1: appended
/// `PluginInstance::preview`; 1.2: appended `HostServices::reclaimed`. Bump the minor when appending, the major (and
/// [`ABI_MAJOR_VERSION_STRING`]) for anything else (docs/abi.md).
pub const ABI_VERSION: AbiVersion = AbiVersion::new(1, 2);

/// abi_stable's own version string for the root module: `0.<ABI major>.0`.
/// abi_stable refuses a library unless, for `0.y.z`, `y` is equal and the host's `z`
/// is not newer; with `y` = our ABI major and `z` = 0 that is exactly "same major",
/// a second, independent guard behind the host's [`AbiVersion::accepts`]. Kept in
/// step with [`ABI_VERSION`] by a test.
pub const ABI_MAJOR_VERSION_STRING: &str = "0.1.0";

/// Name of the exported C function `extern "C" fn() -> AbiVersion` that reports the
/// plugin's [`ABI_VERSION`]; read before any abi_stable type is touched, so a plugin
/// of another major is refused with both versions named and none of its layout read.
pub const ABI_VERSION_SYMBOL: &[u8] = b"tfo_plugin_abi_version\0";

/// What plugin code needs in scope.
pub mod prelude {
    pub use crate::contract::{
        ConfigError, CreateError, DataTypes, EmitStatus, ErrorKind, ExportOk, HealthReport,
        HealthState, LogLevel, PluginError, PluginKind,
    };
    pub use crate::data::*;
    #[cfg(feature = "sdk")]
    pub use crate::sdk::{Context, Plugin};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_stable_version_string_tracks_the_abi_major() {
        assert_eq!(
            ABI_MAJOR_VERSION_STRING,
            format!("0.{}.0", ABI_VERSION.major)
        );
    }

    #[test]
    fn crate_version_class_is_the_abi_major() {
        // abi_stable's layout check compares the package version of every type with
        // cargo's rule (0.y: same y), so the crate's 0.y must move with the ABI major
        // and only with it (docs/abi.md).
        assert_eq!(env!("CARGO_PKG_VERSION_MAJOR"), "0");
        assert_eq!(
            env!("CARGO_PKG_VERSION_MINOR"),
            ABI_VERSION.major.to_string()
        );
    }

    #[test]
    fn loading_rule() {
        let host = AbiVersion::new(1, 2);
        assert_eq!(host.accepts(AbiVersion::new(1, 0)), Ok(()));
        assert_eq!(host.accepts(AbiVersion::new(1, 1)), Ok(()));
        assert_eq!(host.accepts(AbiVersion::new(1, 2)), Ok(()));
        assert_eq!(
            host.accepts(AbiVersion::new(1, 3)),
            Err(AbiMismatch::NewerMinor)
        );
        assert_eq!(host.accepts(AbiVersion::new(2, 0)), Err(AbiMismatch::Major));
        assert_eq!(host.accepts(AbiVersion::new(0, 1)), Err(AbiMismatch::Major));
        assert_eq!(AbiVersion::new(2, 0).to_string(), "2.0");
    }
}
