//! The plugin's configuration: the integration's block of the agent config, handed
//! over as JSON.
//!
//! ```yaml
//! integrations:
//!   proxmox:
//!     enabled: true
//!     interval: 30s
//!     api_url: https://pve1.example.net:8006
//!     # either an API token (preferred: no session, read-only role possible) ...
//!     username: monitoring@pve
//!     token_id: tfo
//!     token_secret: ${PVE_TOKEN_SECRET}
//!     # ... or a user and password (a ticket, refreshed before it expires)
//!     # username: monitoring
//!     # realm: pve
//!     # password: ${PVE_PASSWORD}
//!     ca_file: /etc/ssl/pve-root-ca.pem
//! ```
//!
//! Key names follow the older Go agent's (`api_url`, `username`, `password`,
//! `token_id`, `token_secret`, `realm`, `node`, `collect_*`, `labels`,
//! `tls_skip_verify`) so existing blocks keep working; `insecure_skip_verify` and
//! `ca_file` are the names the other HTTP plugins use. Unknown keys are rejected;
//! [`Config::resolve`] reports every problem at once with its field path. Secrets
//! never appear in `Debug` output or messages.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default bound of one HTTP exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound of one whole collection, below the host's 30 s call timeout.
pub const DEFAULT_COLLECT_TIMEOUT: Duration = Duration::from_secs(25);
/// A PVE ticket is valid for two hours; we log in again after this long so a
/// request never goes out with a ticket about to expire.
pub const TICKET_REFRESH_AFTER: Duration = Duration::from_secs(90 * 60);

/// A string that is never printed (passwords, token secrets).
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

fn yes() -> bool {
    true
}
fn default_realm() -> String {
    "pam".to_string()
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_collect_timeout() -> Duration {
    DEFAULT_COLLECT_TIMEOUT
}
fn default_ticket_refresh() -> Duration {
    TICKET_REFRESH_AFTER
}

/// Configuration of one Proxmox instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of any cluster node's API, e.g. `https://pve1:8006` (the path
    /// `/api2/json` is added; a URL already ending with it is accepted too).
    pub api_url: String,
    /// User, `user` or `user@realm`. Required for both auth methods (API tokens
    /// belong to a user), unless `token_id` is the full `user@realm!name`.
    #[serde(default)]
    pub username: Option<String>,
    /// Realm added to a `username` without `@` (default `pam`).
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Password: ticket authentication.
    #[serde(default)]
    pub password: Option<Secret>,
    /// API token name (`tfo`) or full id (`monitoring@pve!tfo`): token auth.
    #[serde(default)]
    pub token_id: Option<String>,
    /// API token secret (the UUID PVE showed once).
    #[serde(default)]
    pub token_secret: Option<Secret>,
    /// Only report this node (its guests, storage and status). Empty or absent:
    /// the whole cluster.
    #[serde(default)]
    pub node: Option<String>,
    /// Extra PEM CA certificates to trust (PVE's own CA, /etc/pve/pve-root-ca.pem).
    #[serde(default, alias = "tls_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only for test systems.
    #[serde(default, alias = "tls_skip_verify")]
    pub insecure_skip_verify: bool,
    /// Bound of one HTTP exchange (default 10s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Bound of one whole collection (default 25s); what is not fetched by then is
    /// reported in health.
    #[serde(
        default = "default_collect_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub collect_timeout: Duration,
    /// Password auth: log in again once the ticket is this old (default 90m; must
    /// be below PVE's two-hour ticket lifetime).
    #[serde(
        default = "default_ticket_refresh",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub ticket_refresh: Duration,
    /// QEMU VM metrics (default true).
    #[serde(default = "yes")]
    pub collect_vms: bool,
    /// LXC container metrics (default true).
    #[serde(default = "yes")]
    pub collect_containers: bool,
    /// Storage metrics (default true).
    #[serde(default = "yes")]
    pub collect_storage: bool,
    /// Guest network byte counters (default true).
    #[serde(default = "yes")]
    pub collect_network: bool,
    /// Cluster quorum and membership (`/cluster/status`) and HA state
    /// (`/cluster/ha/status/current`) (default true).
    #[serde(default = "yes")]
    pub collect_cluster: bool,
    /// Per-node load, swap, iowait and root fs (`/nodes/{node}/status`, one call per
    /// online node; default true).
    #[serde(default = "yes")]
    pub collect_node_status: bool,
    /// Storage replication job state (`/nodes/{node}/replication`, one call per
    /// online node; default true).
    #[serde(default = "yes")]
    pub collect_replication: bool,
    /// Attributes added to every point.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Accepted for compatibility with the Go agent's blocks and ignored: the host's
    /// `interval` sets the collection period.
    #[serde(
        default,
        rename = "scrape_interval",
        deserialize_with = "tfo_plugin_common::config::opt_duration"
    )]
    pub _scrape_interval: Option<Duration>,
}

/// How the plugin authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: PVEAPIToken=<user@realm!name>=<secret>`.
    Token {
        /// `user@realm!name`.
        full_id: String,
        /// The secret.
        secret: Secret,
    },
    /// `POST /access/ticket` then the `PVEAuthCookie` cookie.
    Ticket {
        /// `user@realm`.
        user: String,
        /// The password.
        password: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token { full_id, .. } => write!(f, "Token({full_id})"),
            Auth::Ticket { user, .. } => write!(f, "Ticket({user})"),
        }
    }
}

/// The validated settings the collector runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:8006/api2/json` (no trailing slash).
    pub base: String,
    /// Credentials.
    pub auth: Auth,
    /// Node filter.
    pub node: Option<String>,
    /// HTTP client options.
    pub client: tfo_plugin_common::http::ClientOptions,
    /// Whole-collection bound.
    pub collect_timeout: Duration,
    /// Ticket age at which the plugin logs in again.
    pub ticket_refresh: Duration,
    /// What to collect.
    pub collect: Collect,
    /// Extra attributes on every point.
    pub labels: BTreeMap<String, String>,
}

/// The `collect_*` switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collect {
    /// QEMU VMs.
    pub vms: bool,
    /// LXC containers.
    pub containers: bool,
    /// Storage.
    pub storage: bool,
    /// Guest network counters.
    pub network: bool,
    /// Cluster status and HA.
    pub cluster: bool,
    /// Node status.
    pub node_status: bool,
    /// Replication.
    pub replication: bool,
}

impl Config {
    /// Checks what serde cannot and builds the [`Settings`]; every problem is
    /// reported at once, each with its field path.
    pub fn resolve(self) -> Result<Settings, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let url = self.api_url.trim().trim_end_matches('/');
        let base = if url.starts_with("https://") || url.starts_with("http://") {
            let host = url.split_once("://").map(|x| x.1).unwrap_or("");
            if host.is_empty() || host.starts_with('/') {
                errs.push(ConfigError::new("api_url", "has no host"));
            }
            if url.ends_with("/api2/json") {
                url.to_string()
            } else {
                format!("{url}/api2/json")
            }
        } else {
            errs.push(ConfigError::new(
                "api_url",
                "must be an http:// or https:// URL, e.g. https://pve1:8006",
            ));
            String::new()
        };
        let user = self
            .username
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let realm = self.realm.trim();
        let full_user = user.map(|u| {
            if u.contains('@') {
                u.to_string()
            } else {
                format!("{u}@{realm}")
            }
        });
        if realm.is_empty() {
            errs.push(ConfigError::new("realm", "must not be empty"));
        }
        let token_id = self
            .token_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let token_secret = self.token_secret.filter(|s| !s.0.is_empty());
        let password = self.password.filter(|s| !s.0.is_empty());
        let auth = match (token_id, token_secret, password) {
            (Some(id), Some(secret), _) => {
                let full_id = if id.contains('!') {
                    Some(id.to_string())
                } else if let Some(u) = &full_user {
                    Some(format!("{u}!{id}"))
                } else {
                    errs.push(ConfigError::new(
                        "username",
                        "required with token_id (or give token_id as user@realm!name)",
                    ));
                    None
                };
                full_id.map(|full_id| Auth::Token { full_id, secret })
            }
            (Some(_), None, _) => {
                errs.push(ConfigError::new("token_secret", "required with token_id"));
                None
            }
            (None, Some(_), _) => {
                errs.push(ConfigError::new("token_id", "required with token_secret"));
                None
            }
            (None, None, Some(password)) => match &full_user {
                Some(u) => Some(Auth::Ticket {
                    user: u.clone(),
                    password,
                }),
                None => {
                    errs.push(ConfigError::new("username", "required with password"));
                    None
                }
            },
            (None, None, None) => {
                errs.push(ConfigError::new(
                    "token_secret",
                    "no credentials: set token_id + token_secret, or username + password",
                ));
                None
            }
        };
        if self.timeout.is_zero() {
            errs.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.collect_timeout.is_zero() {
            errs.push(ConfigError::new(
                "collect_timeout",
                "must be greater than 0",
            ));
        }
        if self.ticket_refresh.is_zero() || self.ticket_refresh >= Duration::from_secs(7200) {
            errs.push(ConfigError::new(
                "ticket_refresh",
                "must be greater than 0 and below 2h (the ticket lifetime)",
            ));
        }
        if let Some(ca) = &self.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                errs.push(ConfigError::new(
                    "ca_file",
                    format!("cannot read {}: {e}", ca.display()),
                ));
            }
        }
        let node = self
            .node
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        if let Some(n) = &node {
            if n.contains('/') {
                errs.push(ConfigError::new("node", "must be a node name"));
            }
        }
        match auth {
            Some(auth) if errs.is_empty() => Ok(Settings {
                base,
                auth,
                node,
                client: tfo_plugin_common::http::ClientOptions {
                    timeout: self.timeout,
                    ca_file: self.ca_file,
                    insecure_skip_verify: self.insecure_skip_verify,
                    ..Default::default()
                },
                collect_timeout: self.collect_timeout,
                ticket_refresh: self.ticket_refresh,
                collect: Collect {
                    vms: self.collect_vms,
                    containers: self.collect_containers,
                    storage: self.collect_storage,
                    network: self.collect_network,
                    cluster: self.collect_cluster,
                    node_status: self.collect_node_status,
                    replication: self.collect_replication,
                },
                labels: self.labels,
            }),
            _ => Err(errs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, Vec<ConfigError>> {
        serde_json::from_str::<Config>(json).unwrap().resolve()
    }

    #[test]
    fn token_auth_builds_the_full_id() {
        let s = parse(
            r#"{"api_url":"https://pve:8006/","username":"mon","realm":"pve",
                "token_id":"tfo","token_secret":"abc"}"#,
        )
        .unwrap();
        assert_eq!(s.base, "https://pve:8006/api2/json");
        assert_eq!(
            s.auth,
            Auth::Token {
                full_id: "mon@pve!tfo".into(),
                secret: Secret("abc".into())
            }
        );
        let s = parse(
            r#"{"api_url":"https://pve:8006/api2/json","token_id":"root@pam!x","token_secret":"abc"}"#,
        )
        .unwrap();
        assert_eq!(s.base, "https://pve:8006/api2/json");
        assert!(matches!(s.auth, Auth::Token { ref full_id, .. } if full_id == "root@pam!x"));
    }

    #[test]
    fn ticket_auth_adds_the_default_realm() {
        let s =
            parse(r#"{"api_url":"https://pve:8006","username":"root","password":"pw"}"#).unwrap();
        assert!(matches!(s.auth, Auth::Ticket { ref user, .. } if user == "root@pam"));
        assert!(s.collect.vms && s.collect.replication);
    }

    #[test]
    fn every_problem_has_its_path() {
        let errs = parse(r#"{"api_url":"pve:8006","token_id":"x","timeout":0}"#).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["api_url", "token_secret", "timeout"], "{errs:?}");
        let errs = parse(r#"{"api_url":"https://pve"}"#).unwrap_err();
        assert_eq!(errs[0].path.as_str(), "token_secret");
        let errs = parse(r#"{"api_url":"https://pve","password":"x"}"#).unwrap_err();
        assert_eq!(errs[0].path.as_str(), "username");
        let errs =
            parse(r#"{"api_url":"https://pve","token_id":"t","token_secret":"s"}"#).unwrap_err();
        assert_eq!(errs[0].path.as_str(), "username");
    }

    #[test]
    fn unknown_keys_are_rejected_and_go_keys_accepted() {
        assert!(serde_json::from_str::<Config>(r#"{"api_url":"https://p","bogus":1}"#).is_err());
        let c: Config = serde_json::from_str(
            r#"{"api_url":"https://p","tls_skip_verify":true,"scrape_interval":"60s","node":""}"#,
        )
        .unwrap();
        assert!(c.insecure_skip_verify);
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let c: Config = serde_json::from_str(
            r#"{"api_url":"https://p","username":"u","password":"hunter2-pw","token_id":"t","token_secret":"s3cr3t-uuid"}"#,
        )
        .unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter2-pw") && !text.contains("s3cr3t-uuid"),
            "{text}"
        );
        let s = c.resolve().unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("s3cr3t-uuid"), "{text}");
    }
}
