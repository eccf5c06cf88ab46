//! A credential in a plugin's config (API key, license key, access-key secret,
//! tracing token): deserialized like a plain string, used in the one place that
//! puts it on the wire, and printed as `***` by `Debug`, so a config dumped in a
//! log line or an error (`{:?}`) never shows it.
//!
//! Why it is shared: every plugin that sends to a vendor holds such a value and
//! needs the same guarantee; one type means one place to get it right.

use serde::Deserialize;

/// A credential: compared and used, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests, programmatic configs).
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that puts it in a header or a signature.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_as_a_string_and_never_prints() {
        let s: Secret = serde_json::from_str("\"KEY-123\"").unwrap();
        assert_eq!(s.expose(), "KEY-123");
        assert_eq!(format!("{s:?}"), "***");
        assert!(!s.is_blank());
        assert!(Secret::new(" \t").is_blank());
        assert!(Secret::default().is_blank());
    }
}
