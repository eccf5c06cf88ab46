//! The plugin boundary on the host side: files, loading, instances, retirement and
//! the manager that ties them together.

pub mod files;
pub mod graveyard;
pub mod host_services;
pub mod instance;
pub mod library;
pub mod manager;
pub mod platform;
pub mod shadow_cache;
