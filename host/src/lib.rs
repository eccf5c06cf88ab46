//! tfo-agent host: plugin manager, pipeline, status and CLI. The binary in
//! `main.rs` is a thin shell over this library so tests and benchmarks drive the same
//! code.

pub mod agent;
pub mod api;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod pipeline;
pub mod plugin;
pub mod redact;
pub mod status;
