//! The exporter's configuration: the integration's block of the agent config, handed
//! to the plugin as JSON.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo such as `max_byte`
//! fails at load time instead of silently falling back to a default. Type errors are
//! reported by the SDK with the field path; [`Config::validate`] adds the checks
//! serde cannot express (ranges, the output directory existing).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default rotation threshold: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Default number of rotated files kept (`path.1` .. `path.5`).
pub const DEFAULT_MAX_FILES: u32 = 5;

/// Configuration of one file-exporter instance.
///
/// ```json
/// { "path": "/var/log/tfo/telemetry.ndjson", "max_bytes": 10485760, "max_files": 5 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The NDJSON file lines are appended to. A relative path is resolved against
    /// the agent's working directory. Its parent directory must exist.
    pub path: PathBuf,
    /// Rotate before a write would make the file larger than this many bytes.
    /// Must be greater than zero. A single line longer than this is written alone
    /// into a fresh file (lines are never split).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// How many rotated files to keep (`path.1` is the newest, `path.N` the oldest;
    /// older ones are deleted). Must be at least 1.
    #[serde(default = "default_max_files")]
    pub max_files: u32,
}

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

fn default_max_files() -> u32 {
    DEFAULT_MAX_FILES
}

impl Config {
    /// Returns every problem found (empty when the config is usable), each with the
    /// path of the offending field, e.g. `max_bytes`.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(msg) = check_path(&self.path) {
            errors.push(ConfigError::new("path", msg));
        }
        if self.max_bytes == 0 {
            errors.push(ConfigError::new("max_bytes", "must be greater than 0"));
        }
        if self.max_files == 0 {
            errors.push(ConfigError::new("max_files", "must be at least 1"));
        }
        errors
    }
}

/// What is wrong with `path`, if anything.
fn check_path(path: &Path) -> Option<String> {
    if path.as_os_str().is_empty() {
        return Some("must not be empty".to_string());
    }
    if path.file_name().is_none() {
        return Some(format!("{} does not name a file", path.display()));
    }
    if path.is_dir() {
        return Some(format!(
            "{} is a directory, expected a file",
            path.display()
        ));
    }
    // `Path::parent` of a bare file name is the empty path: the working directory.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Some(format!(
            "parent directory {} does not exist",
            parent.display()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn paths(errors: &[ConfigError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    fn tmp_file() -> String {
        std::env::temp_dir()
            .join("tfo-file-exporter-config.ndjson")
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn defaults_apply() {
        let c = parse(&format!(r#"{{"path": {:?}}}"#, tmp_file())).unwrap();
        assert_eq!(c.max_bytes, 10 * 1024 * 1024);
        assert_eq!(c.max_files, 5);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn all_keys_parse() {
        let c = parse(&format!(
            r#"{{"path": {:?}, "max_bytes": 100, "max_files": 2}}"#,
            tmp_file()
        ))
        .unwrap();
        assert_eq!(c.max_bytes, 100);
        assert_eq!(c.max_files, 2);
        assert!(c.validate().is_empty());
    }

    #[test]
    fn path_is_required() {
        let e = parse(r#"{"max_bytes": 100}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `path`"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = parse(r#"{"path": "/tmp/x", "max_byte": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `max_byte`"), "{e}");
    }

    #[test]
    fn negative_numbers_are_type_errors() {
        assert!(parse(r#"{"path": "/tmp/x", "max_files": -1}"#).is_err());
    }

    #[test]
    fn zero_limits_are_rejected_with_their_paths() {
        let c = Config {
            path: PathBuf::from(tmp_file()),
            max_bytes: 0,
            max_files: 0,
        };
        let errors = c.validate();
        assert_eq!(paths(&errors), ["max_bytes", "max_files"]);
    }

    #[test]
    fn empty_path_is_rejected() {
        let c = Config {
            path: PathBuf::new(),
            max_bytes: 1,
            max_files: 1,
        };
        let errors = c.validate();
        assert_eq!(paths(&errors), ["path"]);
        assert_eq!(errors[0].message.as_str(), "must not be empty");
    }

    #[test]
    fn missing_parent_directory_is_rejected() {
        let c = Config {
            path: std::env::temp_dir().join("tfo-file-exporter-no-such-dir/x/out.ndjson"),
            max_bytes: 1,
            max_files: 1,
        };
        let errors = c.validate();
        assert_eq!(paths(&errors), ["path"]);
        assert!(
            errors[0].message.contains("does not exist"),
            "{:?}",
            errors[0]
        );
    }

    #[test]
    fn a_directory_is_not_a_file() {
        let c = Config {
            path: std::env::temp_dir(),
            max_bytes: 1,
            max_files: 1,
        };
        assert_eq!(paths(&c.validate()), ["path"]);
    }

    #[test]
    fn bare_file_name_uses_the_working_directory() {
        let c = Config {
            path: PathBuf::from("out.ndjson"),
            max_bytes: 1,
            max_files: 1,
        };
        assert!(c.validate().is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let c = Config {
            path: PathBuf::new(),
            max_bytes: 0,
            max_files: 0,
        };
        assert_eq!(paths(&c.validate()), ["path", "max_bytes", "max_files"]);
    }
}
