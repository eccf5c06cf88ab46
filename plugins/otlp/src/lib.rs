//! The otlp plugin (being written).
