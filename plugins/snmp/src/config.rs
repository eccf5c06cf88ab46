//! The plugin's configuration: the integration's block of the agent config, handed
//! over as JSON.
//!
//! ```yaml
//! integrations:
//!   snmp:
//!     enabled: true
//!     interval: 30s
//!     max_repetitions: 25          # GETBULK max-repetitions (v2c and v3)
//!     scalars: [system]            # built-in scalar groups: system, hrSystem
//!     tables: [ifTable, ifXTable]  # built-in tables: ifTable, ifXTable,
//!                                  #   hrProcessorTable, hrStorageTable
//!     oids:                        # user-defined objects
//!       - oid: 1.3.6.1.4.1.2021.10.1.5
//!         name: laLoadInt
//!         type: gauge              # gauge | counter (default: from the SNMP type)
//!         index_labels: [laIndex]
//!     targets:
//!       - address: 192.0.2.10:161
//!         version: v2c
//!         community: public
//!         timeout: 2s
//!         retries: 2
//!         labels: { site: paris }
//!       - address: core-sw1.example.net     # port 161
//!         name: core-sw1                    # snmp.target (default: address)
//!         version: v3
//!         user:
//!           username: monitor
//!           security_level: authPriv
//!           auth_protocol: SHA256
//!           auth_password: ${SNMP_AUTH}
//!           priv_protocol: AES
//!           priv_password: ${SNMP_PRIV}
//! ```
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::resolve`] adds the checks serde cannot express and reports every
//! problem at once, each with its field path (`targets[1].user.auth_password`).
//! Passwords and communities never appear in `Debug` output or messages.

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

use crate::{
    encode::Oid,
    mibs::{self, ScalarGroup, TableDef},
    usm::{AuthProtocol, PrivProtocol, MIN_PASSWORD_LEN},
};

/// Default GETBULK max-repetitions: net-snmp's `snmpbulkwalk` default is 10, the
/// Prometheus snmp_exporter uses 25; 25 rows of ifTable fit a 1500-byte datagram
/// for most agents and keep round trips few.
pub const DEFAULT_MAX_REPETITIONS: u32 = 25;

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Default retries after a timed-out request (so three attempts in all).
pub const DEFAULT_RETRIES: u32 = 2;

/// Default bound of one whole collection, below the host's 30 s call timeout.
pub const DEFAULT_COLLECT_TIMEOUT: Duration = Duration::from_secs(25);

/// A string that is never printed (communities, passwords).
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Configuration of one SNMP instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The agents to poll, concurrently.
    pub targets: Vec<TargetConfig>,
    /// GETBULK max-repetitions (rows per request). Must be 1..=1000.
    #[serde(default = "default_max_repetitions")]
    pub max_repetitions: u32,
    /// Built-in scalar groups to GET (`system`, `hrSystem`). Default `[system]`.
    #[serde(default = "default_scalars")]
    pub scalars: Vec<String>,
    /// Built-in tables to walk (`ifTable`, `ifXTable`, `hrProcessorTable`,
    /// `hrStorageTable`). Default `[ifTable, ifXTable]`.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
    /// User-defined objects.
    #[serde(default)]
    pub oids: Vec<OidConfig>,
    /// Bound of one whole collection over all targets; a target still polling then
    /// is reported down. Must be greater than 0.
    #[serde(
        default = "default_collect_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub collect_timeout: Duration,
}

fn default_max_repetitions() -> u32 {
    DEFAULT_MAX_REPETITIONS
}
fn default_scalars() -> Vec<String> {
    vec!["system".into()]
}
fn default_tables() -> Vec<String> {
    vec!["ifTable".into(), "ifXTable".into()]
}
fn default_collect_timeout() -> Duration {
    DEFAULT_COLLECT_TIMEOUT
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

/// SNMP version of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Version {
    /// SNMPv1 (RFC 1157): GETNEXT walks, no Counter64.
    #[serde(rename = "v1", alias = "1")]
    V1,
    /// SNMPv2c (RFC 1901/3416): GETBULK walks.
    #[default]
    #[serde(rename = "v2c", alias = "2c", alias = "v2")]
    V2c,
    /// SNMPv3 with the User-based Security Model (RFC 3414).
    #[serde(rename = "v3", alias = "3")]
    V3,
}

/// One agent to poll.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `host:port`, `host` (port 161) or `[v6addr]:port`.
    pub address: String,
    /// The `snmp.target` attribute of this target's points; default `address`.
    #[serde(default)]
    pub name: Option<String>,
    /// `v1`, `v2c` (default) or `v3`.
    #[serde(default)]
    pub version: Version,
    /// Community for v1 / v2c; default `public`. Not allowed with v3.
    #[serde(default)]
    pub community: Option<Secret>,
    /// The USM user for v3 (required there, not allowed otherwise).
    #[serde(default)]
    pub user: Option<UserConfig>,
    /// Time to wait for each response before resending. Default 1s.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Resends after a timeout. Default 2.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Extra attributes added to every point of this target.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// USM security level (RFC 3411 §3.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SecurityLevel {
    /// No authentication, no privacy.
    #[serde(rename = "noAuthNoPriv")]
    NoAuthNoPriv,
    /// Authentication, no privacy.
    #[serde(rename = "authNoPriv")]
    AuthNoPriv,
    /// Authentication and privacy.
    #[serde(rename = "authPriv")]
    AuthPriv,
}

/// `auth_protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthProtocolName {
    /// HMAC-SHA-96.
    #[serde(rename = "SHA", alias = "SHA1", alias = "SHA-1")]
    Sha,
    /// HMAC-SHA-224 (RFC 7860).
    #[serde(rename = "SHA224", alias = "SHA-224")]
    Sha224,
    /// HMAC-SHA-256 (RFC 7860).
    #[serde(rename = "SHA256", alias = "SHA-256")]
    Sha256,
    /// HMAC-SHA-384 (RFC 7860).
    #[serde(rename = "SHA384", alias = "SHA-384")]
    Sha384,
    /// HMAC-SHA-512 (RFC 7860).
    #[serde(rename = "SHA512", alias = "SHA-512")]
    Sha512,
}

impl From<AuthProtocolName> for AuthProtocol {
    fn from(p: AuthProtocolName) -> Self {
        match p {
            AuthProtocolName::Sha => AuthProtocol::Sha1,
            AuthProtocolName::Sha224 => AuthProtocol::Sha224,
            AuthProtocolName::Sha256 => AuthProtocol::Sha256,
            AuthProtocolName::Sha384 => AuthProtocol::Sha384,
            AuthProtocolName::Sha512 => AuthProtocol::Sha512,
        }
    }
}

/// `priv_protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PrivProtocolName {
    /// AES-128-CFB (RFC 3826).
    #[serde(rename = "AES", alias = "AES128", alias = "AES-128")]
    Aes,
}

/// An SNMPv3 user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// msgUserName.
    pub username: String,
    /// Default: `authPriv` when `priv_password` is set, `authNoPriv` when only
    /// `auth_password` is, `noAuthNoPriv` otherwise.
    #[serde(default)]
    pub security_level: Option<SecurityLevel>,
    /// Required with authentication.
    #[serde(default)]
    pub auth_protocol: Option<AuthProtocolName>,
    /// At least 8 characters.
    #[serde(default)]
    pub auth_password: Option<Secret>,
    /// Default `AES`.
    #[serde(default)]
    pub priv_protocol: Option<PrivProtocolName>,
    /// At least 8 characters.
    #[serde(default)]
    pub priv_password: Option<Secret>,
    /// contextName of the requests (default empty: the default context).
    #[serde(default)]
    pub context: String,
}

/// Metric type of a user-defined object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OidType {
    /// A gauge whatever the SNMP type.
    Gauge,
    /// A cumulative monotonic sum whatever the SNMP type.
    Counter,
}

/// A user-defined object: a scalar instance (`...1.3.0`) or a subtree to walk (a
/// table column).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidConfig {
    /// Numeric OID.
    pub oid: String,
    /// Metric name.
    pub name: String,
    /// `gauge` or `counter`; default from the SNMP type (Counter32/Counter64 ->
    /// counter, anything else -> gauge).
    #[serde(default, rename = "type")]
    pub kind: Option<OidType>,
    /// Names given to the arcs of the instance index, in order; the last name
    /// takes all remaining arcs (dotted). Default: one `index` label when the
    /// index is not just `0`.
    #[serde(default)]
    pub index_labels: Vec<String>,
    /// Unit (UCUM), default `1`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Description of the metric.
    #[serde(default)]
    pub description: String,
}

/// A validated target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address as written.
    pub address: String,
    /// The `snmp.target` attribute (config `name`, default the address).
    pub name: String,
    /// Host part, without brackets.
    pub host: String,
    /// UDP port.
    pub port: u16,
    /// Security settings.
    pub security: Security,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Resends after a timeout.
    pub retries: u32,
    /// Extra attributes.
    pub labels: Vec<(String, String)>,
}

/// How a target's messages are secured.
#[derive(Clone)]
pub enum Security {
    /// SNMPv1 with a community.
    V1 {
        /// Community.
        community: Vec<u8>,
    },
    /// SNMPv2c with a community.
    V2c {
        /// Community.
        community: Vec<u8>,
    },
    /// SNMPv3 with the USM.
    V3(V3User),
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::V1 { .. } => f.write_str("V1"),
            Security::V2c { .. } => f.write_str("V2c"),
            Security::V3(u) => write!(f, "V3({u:?})"),
        }
    }
}

/// A validated v3 user, with its passwords already turned into keys (Ku).
#[derive(Clone)]
pub struct V3User {
    /// msgUserName.
    pub username: Vec<u8>,
    /// contextName.
    pub context: Vec<u8>,
    /// Authentication protocol and Ku, for authNoPriv and authPriv.
    pub auth: Option<(AuthProtocol, Vec<u8>)>,
    /// Privacy protocol and Ku (hashed with the auth protocol), for authPriv.
    pub privacy: Option<(PrivProtocol, Vec<u8>)>,
}

impl fmt::Debug for V3User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "user={:?} auth={:?} priv={:?}",
            String::from_utf8_lossy(&self.username),
            self.auth.as_ref().map(|a| a.0.name()),
            self.privacy.as_ref().map(|p| p.0),
        )
    }
}

/// A validated user-defined object.
#[derive(Debug, Clone)]
pub struct CustomOid {
    /// The OID.
    pub oid: Oid,
    /// Metric name.
    pub name: String,
    /// Forced type, if any.
    pub kind: Option<OidType>,
    /// Index label names.
    pub index_labels: Vec<String>,
    /// Unit.
    pub unit: String,
    /// Description.
    pub description: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Targets, in config order.
    pub targets: Vec<Target>,
    /// GETBULK max-repetitions.
    pub max_repetitions: u32,
    /// Scalar groups.
    pub scalars: Vec<&'static ScalarGroup>,
    /// Tables.
    pub tables: Vec<&'static TableDef>,
    /// User-defined objects.
    pub oids: Vec<CustomOid>,
    /// Whole-collection bound.
    pub collect_timeout: Duration,
}

/// Splits `host:port`, `host` and `[v6]:port`.
pub fn split_address(addr: &str) -> Result<(String, u16), String> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err("must not be empty".into());
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{addr:?}: missing `]` after an IPv6 address"))?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{addr:?}: expected `:port` after `]`"))?,
                ),
            ),
        }
    } else {
        match addr.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!(
                    "{addr:?}: write an IPv6 address in brackets, e.g. [::1]:161"
                ))
            }
            Some((h, p)) => (h, Some(p)),
            None => (addr, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{addr:?}: the host is empty"));
    }
    let port = match port {
        None => 161,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{addr:?}: invalid port {p:?} (1-65535)")),
            Ok(p) => p,
        },
    };
    Ok((host.to_string(), port))
}

/// Caches Ku per (protocol, password): the 1 MiB hash is the costly part.
#[derive(Default)]
struct KeyCache(BTreeMap<(u8, String), Vec<u8>>);

impl KeyCache {
    fn get(&mut self, proto: AuthProtocol, password: &str) -> Vec<u8> {
        self.0
            .entry((proto.mac_len() as u8, password.to_string()))
            .or_insert_with(|| crate::usm::password_to_key(proto, password.as_bytes()))
            .clone()
    }
}

impl Config {
    /// Checks everything serde cannot and derives the settings the collector uses.
    /// Returns every problem found, each with its field path.
    pub fn resolve(&self) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut keys = KeyCache::default();
        if self.targets.is_empty() {
            errors.push(ConfigError::new(
                "targets",
                "at least one target is required",
            ));
        }
        let targets: Vec<Target> = self
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.resolve(&format!("targets[{i}]"), &mut keys, &mut errors))
            .collect();
        // Two targets with the same `snmp.target` and labels would report the same
        // series twice with different values. (Checked once every target is
        // valid, so the indexes are the config's.)
        if targets.len() == self.targets.len() {
            for (i, t) in targets.iter().enumerate() {
                if let Some(j) = targets[..i]
                    .iter()
                    .position(|o| o.name == t.name && o.labels == t.labels)
                {
                    errors.push(ConfigError::new(
                        format!("targets[{i}]"),
                        format!(
                            "same snmp.target {:?} and labels as targets[{j}]: set `name` or `labels` to tell them apart",
                            t.name
                        ),
                    ));
                }
            }
        }
        if !(1..=1000).contains(&self.max_repetitions) {
            errors.push(ConfigError::new(
                "max_repetitions",
                "must be between 1 and 1000",
            ));
        }
        if self.collect_timeout.is_zero() {
            errors.push(ConfigError::new(
                "collect_timeout",
                "must be greater than 0",
            ));
        }
        let mut scalars = Vec::new();
        for (i, s) in self.scalars.iter().enumerate() {
            match mibs::scalar_group(s) {
                Some(g) if !scalars.iter().any(|x: &&ScalarGroup| x.name == g.name) => {
                    scalars.push(g)
                }
                Some(_) => errors.push(ConfigError::new(
                    format!("scalars[{i}]"),
                    format!("{s:?} is listed twice"),
                )),
                None => errors.push(ConfigError::new(
                    format!("scalars[{i}]"),
                    format!(
                        "unknown scalar group {s:?} (known: {})",
                        mibs::SCALAR_GROUPS
                            .iter()
                            .map(|g| g.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        let mut tables = Vec::new();
        for (i, s) in self.tables.iter().enumerate() {
            match mibs::table(s) {
                Some(t) if !tables.iter().any(|x: &&TableDef| x.name == t.name) => tables.push(t),
                Some(_) => errors.push(ConfigError::new(
                    format!("tables[{i}]"),
                    format!("{s:?} is listed twice"),
                )),
                None => errors.push(ConfigError::new(
                    format!("tables[{i}]"),
                    format!(
                        "unknown table {s:?} (known: {})",
                        mibs::TABLES
                            .iter()
                            .map(|t| t.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        let mut oids = Vec::new();
        for (i, o) in self.oids.iter().enumerate() {
            let path = format!("oids[{i}]");
            let oid = match o.oid.parse::<Oid>() {
                Ok(oid) => Some(oid),
                Err(e) => {
                    errors.push(ConfigError::new(format!("{path}.oid"), e));
                    None
                }
            };
            if !valid_name(&o.name) {
                errors.push(ConfigError::new(
                    format!("{path}.name"),
                    "must be a non-empty metric name of letters, digits, `_`, `.` or `-`, not starting with a digit",
                ));
            } else if mibs::builtin_metric_names().any(|n| n == o.name) {
                errors.push(ConfigError::new(
                    format!("{path}.name"),
                    format!("{:?} is the name of a built-in metric", o.name),
                ));
            } else if self.oids[..i].iter().any(|p| p.name == o.name) {
                errors.push(ConfigError::new(
                    format!("{path}.name"),
                    format!("{:?} is used by another entry", o.name),
                ));
            }
            for (j, l) in o.index_labels.iter().enumerate() {
                if !valid_name(l) {
                    errors.push(ConfigError::new(
                        format!("{path}.index_labels[{j}]"),
                        "must be a non-empty label name of letters, digits, `_`, `.` or `-`",
                    ));
                }
            }
            if let Some(oid) = oid {
                oids.push(CustomOid {
                    oid,
                    name: o.name.clone(),
                    kind: o.kind,
                    index_labels: o.index_labels.clone(),
                    unit: o.unit.clone().unwrap_or_else(|| "1".into()),
                    description: o.description.clone(),
                });
            }
        }
        if scalars.is_empty() && tables.is_empty() && oids.is_empty() {
            errors.push(ConfigError::new(
                "",
                "nothing to collect: `scalars`, `tables` and `oids` are all empty",
            ));
        }
        if errors.is_empty() {
            Ok(Settings {
                targets,
                max_repetitions: self.max_repetitions,
                scalars,
                tables,
                oids,
                collect_timeout: self.collect_timeout,
            })
        } else {
            Err(errors)
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl TargetConfig {
    fn resolve(
        &self,
        path: &str,
        keys: &mut KeyCache,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Target> {
        let before = errors.len();
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            errors.push(ConfigError::new(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        let addr = split_address(&self.address)
            .map_err(|e| errors.push(ConfigError::new(format!("{path}.address"), e)))
            .ok();
        if self.timeout.is_zero() {
            errors.push(ConfigError::new(
                format!("{path}.timeout"),
                "must be greater than 0",
            ));
        }
        if self.retries > 10 {
            errors.push(ConfigError::new(
                format!("{path}.retries"),
                "must be at most 10",
            ));
        }
        for k in self.labels.keys() {
            if !valid_name(k) {
                errors.push(ConfigError::new(
                    format!("{path}.labels.{k}"),
                    "label names are letters, digits, `_`, `.` or `-`",
                ));
            }
        }
        let security = match self.version {
            Version::V1 | Version::V2c => {
                if self.user.is_some() {
                    errors.push(ConfigError::new(
                        format!("{path}.user"),
                        "only for version v3 (v1 and v2c use `community`)",
                    ));
                }
                let community = self
                    .community
                    .as_ref()
                    .map(|c| c.0.clone().into_bytes())
                    .unwrap_or_else(|| b"public".to_vec());
                if community.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{path}.community"),
                        "must not be empty",
                    ));
                }
                if self.version == Version::V1 {
                    Some(Security::V1 { community })
                } else {
                    Some(Security::V2c { community })
                }
            }
            Version::V3 => {
                if self.community.is_some() {
                    errors.push(ConfigError::new(
                        format!("{path}.community"),
                        "not used by version v3 (configure `user`)",
                    ));
                }
                match &self.user {
                    None => {
                        errors.push(ConfigError::new(
                            format!("{path}.user"),
                            "required for version v3",
                        ));
                        None
                    }
                    Some(u) => u
                        .resolve(&format!("{path}.user"), keys, errors)
                        .map(Security::V3),
                }
            }
        };
        if errors.len() > before {
            return None;
        }
        let (host, port) = addr?;
        Some(Target {
            address: self.address.trim().to_string(),
            name: self
                .name
                .clone()
                .unwrap_or_else(|| self.address.trim().to_string()),
            host,
            port,
            security: security?,
            timeout: self.timeout,
            retries: self.retries,
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

impl UserConfig {
    fn resolve(
        &self,
        path: &str,
        keys: &mut KeyCache,
        errors: &mut Vec<ConfigError>,
    ) -> Option<V3User> {
        let before = errors.len();
        if self.username.is_empty() || self.username.len() > 32 {
            errors.push(ConfigError::new(
                format!("{path}.username"),
                "must be 1 to 32 characters (RFC 3414 usmUserName)",
            ));
        }
        let level = self
            .security_level
            .unwrap_or(if self.priv_password.is_some() {
                SecurityLevel::AuthPriv
            } else if self.auth_password.is_some() {
                SecurityLevel::AuthNoPriv
            } else {
                SecurityLevel::NoAuthNoPriv
            });
        let needs_auth = level != SecurityLevel::NoAuthNoPriv;
        let needs_priv = level == SecurityLevel::AuthPriv;
        let check_password = |field: &str,
                              value: &Option<Secret>,
                              needed: bool,
                              errors: &mut Vec<ConfigError>| {
            match (value, needed) {
                (None, true) => errors.push(ConfigError::new(
                    format!("{path}.{field}"),
                    format!("required for security_level {level:?}"),
                )),
                (Some(_), false) => errors.push(ConfigError::new(
                    format!("{path}.{field}"),
                    format!("not used with security_level {level:?}"),
                )),
                (Some(p), true) if p.0.chars().count() < MIN_PASSWORD_LEN => {
                    errors.push(ConfigError::new(
                        format!("{path}.{field}"),
                        format!("must be at least {MIN_PASSWORD_LEN} characters (RFC 3414 §11.2)"),
                    ))
                }
                _ => {}
            }
        };
        check_password("auth_password", &self.auth_password, needs_auth, errors);
        check_password("priv_password", &self.priv_password, needs_priv, errors);
        match (self.auth_protocol, needs_auth) {
            (None, true) => errors.push(ConfigError::new(
                format!("{path}.auth_protocol"),
                "required with authentication: SHA, SHA224, SHA256, SHA384 or SHA512",
            )),
            (Some(_), false) => errors.push(ConfigError::new(
                format!("{path}.auth_protocol"),
                "not used with security_level noAuthNoPriv",
            )),
            _ => {}
        }
        if self.priv_protocol.is_some() && !needs_priv {
            errors.push(ConfigError::new(
                format!("{path}.priv_protocol"),
                format!("not used with security_level {level:?}"),
            ));
        }
        if self.context.len() > 32 {
            errors.push(ConfigError::new(
                format!("{path}.context"),
                "must be at most 32 characters",
            ));
        }
        if errors.len() > before {
            return None;
        }
        let auth = match (needs_auth, self.auth_protocol, &self.auth_password) {
            (true, Some(p), Some(pw)) => {
                let p = AuthProtocol::from(p);
                Some((p, keys.get(p, &pw.0)))
            }
            _ => None,
        };
        let privacy = match (needs_priv, &auth, &self.priv_password) {
            (true, Some((p, _)), Some(pw)) => Some((PrivProtocol::Aes128, keys.get(*p, &pw.0))),
            _ => None,
        };
        Some(V3User {
            username: self.username.clone().into_bytes(),
            context: self.context.clone().into_bytes(),
            auth,
            privacy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn paths(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(|e| e.path.to_string()).collect()
    }

    fn resolve_err(json: &str) -> Vec<ConfigError> {
        parse(json).unwrap().resolve().unwrap_err()
    }

    #[test]
    fn minimal_config_uses_defaults() {
        let c = parse(r#"{"targets": [{"address": "127.0.0.1:1161"}]}"#).unwrap();
        let s = c.resolve().unwrap();
        assert_eq!(s.max_repetitions, 25);
        assert_eq!(
            s.scalars.iter().map(|g| g.name).collect::<Vec<_>>(),
            ["system"]
        );
        assert_eq!(
            s.tables.iter().map(|t| t.name).collect::<Vec<_>>(),
            ["ifTable", "ifXTable"]
        );
        let t = &s.targets[0];
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1161));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.retries, 2);
        match &t.security {
            Security::V2c { community } => assert_eq!(community, b"public"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.collect_timeout, Duration::from_secs(25));
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"{
            "max_repetitions": 10,
            "scalars": ["system", "hrSystem"],
            "tables": ["ifTable", "hrStorageTable", "hrProcessorTable"],
            "oids": [{"oid": ".1.3.6.1.4.1.2021.10.1.5", "name": "laLoadInt", "type": "gauge",
                      "index_labels": ["laIndex"], "unit": "%", "description": "load"}],
            "collect_timeout": "10s",
            "targets": [
              {"address": "[::1]:1161", "version": "v1", "community": "c1", "timeout": "500ms",
               "retries": 0, "labels": {"site": "lab"}},
              {"address": "switch.example.net", "version": "v3",
               "user": {"username": "u", "security_level": "authPriv", "auth_protocol": "SHA256",
                        "auth_password": "authpass456", "priv_protocol": "AES",
                        "priv_password": "privpass789"}},
              {"address": "10.0.0.1:161", "version": "v3",
               "user": {"username": "n"}}
            ]}"#,
        )
        .unwrap();
        let s = c.resolve().unwrap();
        assert_eq!(s.targets.len(), 3);
        assert_eq!(
            (s.targets[0].host.as_str(), s.targets[0].port),
            ("::1", 1161)
        );
        assert_eq!(
            s.targets[0].labels,
            [("site".to_string(), "lab".to_string())]
        );
        assert_eq!(s.targets[1].port, 161);
        let Security::V3(u) = &s.targets[1].security else {
            panic!()
        };
        assert_eq!(u.auth.as_ref().unwrap().0, AuthProtocol::Sha256);
        assert_eq!(u.auth.as_ref().unwrap().1.len(), 32);
        assert!(u.privacy.is_some());
        let Security::V3(n) = &s.targets[2].security else {
            panic!()
        };
        assert!(n.auth.is_none() && n.privacy.is_none());
        assert_eq!(s.oids[0].oid.to_string(), "1.3.6.1.4.1.2021.10.1.5");
        assert_eq!(s.oids[0].unit, "%");
        // Secrets never print.
        let dbg = format!("{c:?} {s:?}");
        assert!(
            !dbg.contains("authpass456") && !dbg.contains("privpass789"),
            "{dbg}"
        );
        assert!(!dbg.contains("\"c1\""), "{dbg}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let e = parse(r#"{"targets": [{"address": "a", "comunity": "x"}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `comunity`"), "{e}");
        let e = parse(r#"{"targets": [], "max_reps": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `max_reps`"), "{e}");
        let e = parse(r#"{"targets": [{"address": "a", "version": "v2"}]}"#);
        assert!(e.is_ok());
        let e = parse(r#"{"targets": [{"address": "a", "version": "v4"}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `v4`"), "{e}");
        let e = parse(
            r#"{"targets": [{"address": "a", "version": "v3", "user": {"username": "u", "auth_protocol": "MD5"}}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `MD5`"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errors = resolve_err(
            r#"{
            "max_repetitions": 0,
            "scalars": ["system", "nope", "system"],
            "tables": ["ifTable", "ifTabel"],
            "collect_timeout": 0,
            "oids": [{"oid": "1.3.x", "name": "9bad", "index_labels": [""]},
                     {"oid": "1.3.6.1", "name": "ifHCInOctets"}],
            "targets": [
              {"address": "", "timeout": 0, "retries": 11},
              {"address": "h:0", "version": "v3", "community": "x"},
              {"address": "::1:161", "version": "v2c", "user": {"username": "u"}, "community": ""},
              {"address": "h", "version": "v3", "user": {"username": "", "security_level": "authPriv",
                 "auth_password": "short", "priv_protocol": "AES"}},
              {"address": "h", "version": "v3", "user": {"username": "u", "security_level": "noAuthNoPriv",
                 "auth_protocol": "SHA", "auth_password": "longenough"}}
            ]}"#,
        );
        assert_eq!(
            paths(&errors),
            [
                "targets[0].address",
                "targets[0].timeout",
                "targets[0].retries",
                "targets[1].address",
                "targets[1].community",
                "targets[1].user",
                "targets[2].address",
                "targets[2].user",
                "targets[2].community",
                "targets[3].user.username",
                "targets[3].user.auth_password",
                "targets[3].user.priv_password",
                "targets[3].user.auth_protocol",
                "targets[4].user.auth_password",
                "targets[4].user.auth_protocol",
                "max_repetitions",
                "collect_timeout",
                "scalars[1]",
                "scalars[2]",
                "tables[1]",
                "oids[0].oid",
                "oids[0].name",
                "oids[0].index_labels[0]",
                "oids[1].name",
            ]
        );
        let msg = |p: &str| {
            errors
                .iter()
                .find(|e| e.path.as_str() == p)
                .unwrap()
                .message
                .to_string()
        };
        assert!(msg("targets[3].user.auth_password").contains("at least 8"));
        assert!(msg("tables[1]").contains("ifXTable"));
        assert!(msg("targets[2].address").contains("brackets"));
        assert!(msg("oids[1].name").contains("built-in"));
    }

    #[test]
    fn empty_targets_and_nothing_to_collect() {
        let errors = resolve_err(r#"{"targets": [], "scalars": [], "tables": []}"#);
        assert_eq!(paths(&errors), ["targets", ""]);
    }

    #[test]
    fn addresses() {
        assert_eq!(split_address("h:1").unwrap(), ("h".into(), 1));
        assert_eq!(split_address("h").unwrap(), ("h".into(), 161));
        assert_eq!(split_address("[fe80::1]").unwrap(), ("fe80::1".into(), 161));
        assert_eq!(split_address("[::1]:99").unwrap(), ("::1".into(), 99));
        assert!(split_address("[::1").is_err());
        assert!(split_address("[::1]x").is_err());
        assert!(split_address(":161").is_err());
        assert!(split_address("h:65536").is_err());
        assert!(split_address("h:p").is_err());
    }

    #[test]
    fn duplicate_targets_need_a_name_or_labels() {
        let errors = resolve_err(
            r#"{"targets": [{"address": "h:1"}, {"address": "h:1", "version": "v1"}]}"#,
        );
        assert_eq!(paths(&errors), ["targets[1]"]);
        assert!(errors[0].message.contains("targets[0]"), "{:?}", errors[0]);
        let ok = parse(
            r#"{"targets": [{"address": "h:1"}, {"address": "h:1", "name": "h-v1"},
                            {"address": "h:1", "labels": {"a": "b"}}]}"#,
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(ok.targets[1].name, "h-v1");
        assert_eq!(ok.targets[0].name, "h:1");
        let errors = resolve_err(r#"{"targets": [{"address": "h", "name": " "}]}"#);
        assert_eq!(paths(&errors), ["targets[0].name"]);
    }

    #[test]
    fn security_level_defaults_from_the_passwords() {
        let c = parse(
            r#"{"targets": [{"address": "h", "version": "v3",
                "user": {"username": "u", "auth_protocol": "SHA", "auth_password": "authpass123"}}]}"#,
        )
        .unwrap();
        let s = c.resolve().unwrap();
        let Security::V3(u) = &s.targets[0].security else {
            panic!()
        };
        assert!(u.auth.is_some() && u.privacy.is_none());
    }
}
