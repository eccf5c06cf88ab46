//! # tfo-plugin-api
//!
//! The only crate the tfo-agent host and its plugins share. Its version is the ABI
//! contract: a plugin built against plugin-api `0.y.*` loads in a host speaking
//! `0.y.*` when the host's minor is not older (abi_stable's rule), and the host checks
//! every type's layout before it calls any plugin function.
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

/// Version of this crate, which is the ABI version hosts and plugins compare.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

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
