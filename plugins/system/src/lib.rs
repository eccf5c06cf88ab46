//! The system plugin (being written).
