//! Lowercase hex for trace and span ids (OTLP/JSON writes them as hex strings): the
//! shared `tfo_plugin_common::hex` helpers, re-exported for this crate's modules.

pub use tfo_plugin_common::hex::{decode, encode};
