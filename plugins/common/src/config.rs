//! Serde helpers for plugin configs, so every plugin spells durations the way the
//! agent's own config does (`500ms`, `10s`, `5m`, `1h`; a bare number is seconds).
//!
//! Use with `#[serde(deserialize_with = "tfo_plugin_common::config::duration")]`
//! (plus `default = ...` for optional keys); a bad value becomes a config error that
//! the SDK reports with the field's path.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a duration from `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"3"` or a
/// non-negative number of seconds.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(f64),
    }
    match Raw::deserialize(d)? {
        Raw::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        Raw::N(n) => from_secs(n).map_err(serde::de::Error::custom),
    }
}

/// [`duration`] for an optional key (`null` or absent is `None`).
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "duration")] Duration);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// Parses `250ms`, `10s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 10s, 5m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m or h)")),
    };
    from_secs(secs)
}

fn from_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "invalid duration {secs} (must be a non-negative number)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {secs}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct C {
        #[serde(deserialize_with = "duration")]
        d: Duration,
        #[serde(default, deserialize_with = "opt_duration")]
        o: Option<Duration>,
    }

    #[test]
    fn units_and_bare_numbers() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn serde_accepts_strings_and_numbers() {
        let c: C = serde_json::from_str(r#"{"d": "250ms", "o": 2}"#).unwrap();
        assert_eq!(c.d, Duration::from_millis(250));
        assert_eq!(c.o, Some(Duration::from_secs(2)));
        let c: C = serde_json::from_str(r#"{"d": 1.5}"#).unwrap();
        assert_eq!(c.d, Duration::from_millis(1500));
        assert_eq!(c.o, None);
        let e = serde_json::from_str::<C>(r#"{"d": -1}"#).unwrap_err();
        assert!(e.to_string().contains("non-negative"), "{e}");
        let e = serde_json::from_str::<C>(r#"{"d": "5 years"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}
