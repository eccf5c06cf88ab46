//! The agent config file (`tfo-agent.yaml`). This is the part the plugin manager
//! needs: `agent`, `plugins` and `integrations`; every integration block is
//! `enabled`, optional `plugin` and `interval`, and the plugin's own keys, which the
//! plugin validates itself in `create`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::plugin::manager::{InstanceSpec, ManagerOptions};

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent identity.
    #[serde(default)]
    pub agent: AgentSection,
    /// Plugin directory and trust settings.
    pub plugins: PluginsSection,
    /// Integration instances.
    #[serde(default)]
    pub integrations: BTreeMap<String, serde_yaml::Value>,
}

/// `agent:`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Agent id.
    #[serde(default)]
    pub id: Option<String>,
    /// Hostname override.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Tags added to the resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `plugins:`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// Directory of `libtfo_<name>.so` files (relative paths are relative to the
    /// config file).
    pub dir: PathBuf,
    /// Optional sha256 allow-list.
    #[serde(default)]
    pub allow_sha256: Option<Vec<String>>,
    /// Where the private shadow directory is created (default: the temp dir).
    #[serde(default)]
    pub shadow_dir: Option<PathBuf>,
    /// Quiet time after a file event before reloading (default 500ms).
    #[serde(default)]
    pub debounce: Option<String>,
    /// Periodic rescan (default 30s, 0 = off).
    #[serde(default)]
    pub rescan_interval: Option<String>,
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
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl Config {
    /// Reads and parses a config file; errors name the file and the YAML location.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: Config =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if c.plugins.dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            c.plugins.dir = base.join(&c.plugins.dir);
        }
        Ok(c)
    }

    /// Manager options from the `plugins` section.
    pub fn manager_options(&self) -> Result<ManagerOptions, String> {
        let mut o = ManagerOptions::new(&self.plugins.dir);
        if let Some(list) = &self.plugins.allow_sha256 {
            o.allow_sha256 = Some(list.iter().map(|s| s.to_ascii_lowercase()).collect());
        }
        if let Some(d) = &self.plugins.shadow_dir {
            o.shadow_base = d.clone();
        }
        if let Some(d) = &self.plugins.debounce {
            o.debounce = parse_duration(d).map_err(|e| format!("plugins.debounce: {e}"))?;
        }
        if let Some(d) = &self.plugins.rescan_interval {
            o.rescan_interval =
                parse_duration(d).map_err(|e| format!("plugins.rescan_interval: {e}"))?;
        }
        Ok(o)
    }

    /// The enabled integration instances.
    pub fn instance_specs(&self) -> Result<Vec<InstanceSpec>, String> {
        let mut out = Vec::new();
        for (name, block) in &self.integrations {
            let path = format!("integrations.{name}");
            let serde_yaml::Value::Mapping(map) = block else {
                return Err(format!("{path}: must be a mapping"));
            };
            let mut config = serde_json::Map::new();
            let mut enabled = false;
            let mut plugin = name.clone();
            let mut interval = Duration::from_secs(10);
            for (k, v) in map {
                let key = k
                    .as_str()
                    .ok_or_else(|| format!("{path}: keys must be strings"))?;
                match key {
                    "enabled" => {
                        enabled = v
                            .as_bool()
                            .ok_or_else(|| format!("{path}.enabled: must be true or false"))?
                    }
                    "plugin" => {
                        plugin = v
                            .as_str()
                            .ok_or_else(|| format!("{path}.plugin: must be a string"))?
                            .to_string()
                    }
                    "interval" => {
                        let s = match v {
                            serde_yaml::Value::String(s) => s.clone(),
                            serde_yaml::Value::Number(n) => n.to_string(),
                            _ => {
                                return Err(format!("{path}.interval: must be a duration like 10s"))
                            }
                        };
                        interval =
                            parse_duration(&s).map_err(|e| format!("{path}.interval: {e}"))?;
                    }
                    _ => {
                        let j =
                            serde_json::to_value(v).map_err(|e| format!("{path}.{key}: {e}"))?;
                        config.insert(key.to_string(), j);
                    }
                }
            }
            if enabled {
                out.push(InstanceSpec {
                    name: name.clone(),
                    plugin,
                    config: serde_json::Value::Object(config),
                    interval,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn specs_split_host_keys_from_plugin_keys() {
        let c: Config = serde_yaml::from_str(
            "plugins: {dir: /x}\nintegrations:\n  out:\n    enabled: true\n    plugin: file-exporter\n    interval: 5s\n    path: /tmp/o\n  off:\n    enabled: false\n",
        )
        .unwrap();
        let s = c.instance_specs().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].plugin, "file-exporter");
        assert_eq!(s[0].interval, Duration::from_secs(5));
        assert_eq!(s[0].config, serde_json::json!({"path": "/tmp/o"}));
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let e = serde_yaml::from_str::<Config>("plugins: {dir: /x}\nplugin: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `plugin`"), "{e}");
    }
}
