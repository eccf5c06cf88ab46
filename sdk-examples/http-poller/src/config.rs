//! The poller's configuration: the integration's block of the agent config (without
//! the host's own keys `enabled`, `plugin`, `interval`, `routes`), handed to the
//! plugin as JSON.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo such as `json_pointr`
//! fails at load time instead of being ignored. Type errors are reported by the SDK
//! with the field path (`metrics[1].kind: unknown variant ...`); [`Config::validate`]
//! adds the checks serde cannot express, each with the path of its field, e.g.
//! `metrics[0].json_pointer` or `headers.X Bad`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};
use tfo_plugin_api::ConfigError;

/// Default request timeout (connect, send, and read the whole body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default cap on the response body: a misconfigured URL pointing at a large file
/// must not make the agent read it all into memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Configuration of one http-poller instance.
///
/// ```yaml
/// url: http://127.0.0.1:8080/stats
/// timeout: 5s
/// headers: { Authorization: "Bearer ${STATS_TOKEN}" }
/// metrics:
///   - { name: queue.depth, json_pointer: /queue/depth, kind: gauge, unit: "{message}" }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `http://` or `https://` URL fetched with `GET` on every poll.
    pub url: String,
    /// A PEM file of CA certificates trusted for `https://` URLs in addition to the
    /// system store (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Extra request headers (e.g. `Authorization`), sent as given.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time allowed for one request, from connecting to the last body byte.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Push mode: when set, the plugin polls on this period itself (a task on the
    /// instance runtime) and pushes each batch with `emit`; the host's `collect`
    /// calls then return nothing. When absent, the host polls with `collect` on the
    /// integration's `interval`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub push_interval: Option<Duration>,
    /// What to extract from the response: one metric per entry. At least one.
    pub metrics: Vec<MetricSpec>,
}

/// One value to extract from the JSON response.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Metric name, e.g. `queue.depth`.
    pub name: String,
    /// Where the value is in the response, as an RFC 6901 JSON pointer
    /// (`/queue/depth`, `/items/0/size`, `/a~1b` for the key `a/b`); `""` is the
    /// whole document.
    pub json_pointer: String,
    /// `gauge` (a reading) or `counter` (a monotonic cumulative total).
    #[serde(default)]
    pub kind: Kind,
    /// UCUM unit, e.g. `By`, `s`, `{request}`; `1` (dimensionless) by default.
    #[serde(default = "default_unit")]
    pub unit: String,
    /// Fixed attributes put on the data point.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// What kind of metric a value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A reading that may go up and down (OpenTelemetry gauge).
    #[default]
    Gauge,
    /// A monotonic cumulative total (OpenTelemetry sum, monotonic, cumulative).
    Counter,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

fn default_unit() -> String {
    "1".to_string()
}

/// A duration as the agent writes them: `250ms`, `10s`, `5m`, `1h`, or a number of
/// seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        Raw::Secs(s) => Err(serde::de::Error::custom(format!("invalid duration {s}"))),
        Raw::Text(t) => parse_duration(&t).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid duration {t:?} (use e.g. 500ms, 10s, 5m)"))
        }),
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Parses `250ms`, `10s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = num.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| Duration::from_secs_f64(n * scale))
}

impl Config {
    /// Returns every problem found (empty when the config is usable), each with the
    /// path of the offending field.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        match self.url.parse::<http::Uri>() {
            Err(e) => errors.push(ConfigError::new("url", format!("not a valid URL: {e}"))),
            Ok(uri) => {
                if !matches!(uri.scheme_str(), Some("http" | "https")) {
                    errors.push(ConfigError::new(
                        "url",
                        "must start with http:// or https://",
                    ));
                } else if uri.host().is_none_or(str::is_empty) {
                    errors.push(ConfigError::new("url", "has no host"));
                }
            }
        }
        if let Some(ca) = &self.ca_file {
            if !self.url.starts_with("https://") {
                errors.push(ConfigError::new(
                    "ca_file",
                    "only used with an https:// url",
                ));
            } else if !ca.is_file() {
                errors.push(ConfigError::new(
                    "ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "not a valid HTTP header name"));
            } else if http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(
                    path,
                    "not a valid HTTP header value (control characters or non-ASCII)",
                ));
            }
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.max_response_bytes == 0 {
            errors.push(ConfigError::new(
                "max_response_bytes",
                "must be greater than 0",
            ));
        }
        if self
            .push_interval
            .is_some_and(|d| d < Duration::from_millis(10))
        {
            errors.push(ConfigError::new("push_interval", "must be at least 10ms"));
        }
        if self.metrics.is_empty() {
            errors.push(ConfigError::new("metrics", "at least one metric is needed"));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let at = |field: &str| format!("metrics[{i}].{field}");
            if m.name.trim().is_empty() {
                errors.push(ConfigError::new(at("name"), "must not be empty"));
            } else if let Some(first) = seen.insert(m.name.as_str(), i) {
                // Two entries with one name would be two series a backend merges.
                errors.push(ConfigError::new(
                    at("name"),
                    format!("{:?} is already the name of metrics[{first}]", m.name),
                ));
            }
            if let Some(msg) = check_pointer(&m.json_pointer) {
                errors.push(ConfigError::new(at("json_pointer"), msg));
            }
            if m.unit.is_empty() {
                errors.push(ConfigError::new(
                    at("unit"),
                    "must not be empty (use \"1\")",
                ));
            }
            if m.attributes.keys().any(|k| k.is_empty()) {
                errors.push(ConfigError::new(
                    at("attributes"),
                    "attribute names must not be empty",
                ));
            }
        }
        errors
    }
}

/// What is wrong with an RFC 6901 JSON pointer, if anything: it is empty (the whole
/// document) or starts with `/`, and `~` only appears as `~0` or `~1`.
pub fn check_pointer(pointer: &str) -> Option<String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Some(format!(
            "{pointer:?} is not a JSON pointer: it must start with '/' (RFC 6901), e.g. \"/{pointer}\""
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Some(format!(
                "{pointer:?}: '~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')"
            ));
        }
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

    const MINIMAL: &str =
        r#"{"url": "http://127.0.0.1:1/x", "metrics": [{"name": "a", "json_pointer": "/a"}]}"#;

    #[test]
    fn defaults_apply() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.max_response_bytes, 1024 * 1024);
        assert_eq!(c.push_interval, None);
        assert_eq!(c.ca_file, None);
        assert!(c.headers.is_empty());
        assert_eq!(c.metrics[0].kind, Kind::Gauge);
        assert_eq!(c.metrics[0].unit, "1");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn all_keys_parse() {
        let c = parse(
            r#"{"url": "https://stats.example.com/v1", "headers": {"Authorization": "Bearer t"},
                "timeout": "250ms", "max_response_bytes": 10, "push_interval": 2,
                "metrics": [{"name": "n", "json_pointer": "", "kind": "counter", "unit": "By",
                             "attributes": {"pool": "main"}}]}"#,
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.push_interval, Some(Duration::from_secs(2)));
        assert_eq!(c.metrics[0].kind, Kind::Counter);
        assert_eq!(c.metrics[0].attributes["pool"], "main");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
        let e = parse(r#"{"url": "http://h/", "timeout": "soon", "metrics": []}"#).unwrap_err();
        assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn unknown_keys_and_kinds_are_rejected() {
        let e = parse(r#"{"url": "http://h/", "metrics": [], "intervl": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `intervl`"), "{e}");
        let e = parse(
            r#"{"url": "http://h/", "metrics": [{"name": "a", "json_pointer": "/a", "kind": "histogram"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `histogram`"), "{e}");
    }

    #[test]
    fn url_must_be_http() {
        for (url, msg) in [
            ("ftp://h/x", "http:// or https://"),
            ("/just/a/path", "http:// or https://"),
            ("http://exa mple/", "not a valid URL"),
        ] {
            let mut c = parse(MINIMAL).unwrap();
            c.url = url.into();
            let errors = c.validate();
            assert_eq!(paths(&errors), ["url"], "{url}");
            assert!(errors[0].message.contains(msg), "{url}: {errors:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let c = parse(
            r#"{"url": "http://h/", "headers": {"Bad Name": "x", "X-Ok": "line\nbreak"},
                "timeout": 0, "max_response_bytes": 0, "push_interval": "1ms",
                "metrics": [{"name": "a", "json_pointer": "a/b"},
                            {"name": "a", "json_pointer": "/x~2", "unit": "", "attributes": {"": "v"}},
                            {"name": " ", "json_pointer": "/ok~0~1"}]}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c.validate()),
            [
                "headers.Bad Name",
                "headers.X-Ok",
                "timeout",
                "max_response_bytes",
                "push_interval",
                "metrics[0].json_pointer",
                "metrics[1].name",
                "metrics[1].json_pointer",
                "metrics[1].unit",
                "metrics[1].attributes",
                "metrics[2].name",
            ]
        );
    }

    #[test]
    fn ca_file_needs_https_and_a_file() {
        let mut c = parse(MINIMAL).unwrap();
        c.ca_file = Some(std::env::temp_dir());
        assert_eq!(paths(&c.validate()), ["ca_file"]);
        c.url = "https://h/x".into();
        let errors = c.validate();
        assert_eq!(paths(&errors), ["ca_file"]);
        assert!(
            errors[0].message.contains("not a readable file"),
            "{errors:?}"
        );
    }

    #[test]
    fn no_metrics_is_an_error() {
        let c = parse(r#"{"url": "http://h/", "metrics": []}"#).unwrap();
        assert_eq!(paths(&c.validate()), ["metrics"]);
    }

    #[test]
    fn pointers() {
        assert_eq!(check_pointer(""), None);
        assert_eq!(check_pointer("/"), None);
        assert_eq!(check_pointer("/a~1b/~0"), None);
        assert!(check_pointer("a").unwrap().contains("must start with '/'"));
        assert!(check_pointer("/a~")
            .unwrap()
            .contains("'~' must be followed"));
    }
}
