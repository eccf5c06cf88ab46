//! Secret redaction: the values of secret config fields never reach the log, the
//! HTTP API, `validate`/`run --once` output or a panic message.
//!
//! A field is secret when its key names a credential ([`is_secret_key`]: `password`,
//! `token`, `api_key`, `client_secret`, `private_key`, ... anywhere in an integration
//! block, plus `http.token`), and a URL's password (`https://user:PASS@host`) is
//! secret wherever it appears. Redaction works on the *values*, not on where they
//! are printed: after a config is loaded its secret values are registered
//! ([`register`]) and every byte the agent writes to its log ([`RedactingStderr`]),
//! serves on its API, or prints from `validate` passes through [`redact`], so a
//! plugin error message or a serde error that quotes a value is covered too.
//!
//! Secrets of a replaced config stay registered (a late message about the old
//! config must not leak either). Values shorter than [`MIN_SECRET_LEN`] are not
//! registered: replacing every `a` in the log would make it unreadable and such a
//! value protects nothing.
//!
//! Not covered: what a plugin writes to stderr itself, bypassing the host's log
//! (the SDK routes plugin `tracing` events and panics in plugin calls to the host, so
//! this only concerns a plugin that prints directly).

use std::{
    borrow::Cow,
    collections::BTreeSet,
    io::{self, Write},
    sync::RwLock,
};

use crate::config::Config;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shorter values are not treated as secrets (see the module docs).
pub const MIN_SECRET_LEN: usize = 4;

/// Registered secret values, longest first (so a secret containing another is
/// replaced whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether a config key holds a credential. Matching is on the lower-cased key
/// with `-` read as `_`, so `apiKey`, `api-key` and `API_KEY` all count.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    const EXACT: [&str; 5] = ["key", "secret", "token", "authorization", "pass"];
    const PARTS: [&str; 13] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "apikey",
        "license_key",
        "private_key",
        "access_key",
        "credential",
        "auth_key",
        "community",
    ];
    EXACT.contains(&k.as_str()) || PARTS.iter().any(|p| k.contains(p))
}

/// The secret values of a config: every string under a secret key in any
/// integration block (at any depth, including lists), URL passwords in any string,
/// and `http.token`.
pub fn secrets_of(config: &Config) -> Vec<String> {
    let mut out = BTreeSet::new();
    if let Some(t) = &config.http.token {
        out.insert(t.clone());
    }
    for block in config.integrations.values() {
        walk(block, false, &mut out);
    }
    out.into_iter()
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect()
}

fn walk(v: &serde_yaml::Value, secret: bool, out: &mut BTreeSet<String>) {
    use serde_yaml::Value;
    match v {
        Value::String(s) => {
            if secret {
                out.insert(s.clone());
            }
            if let Some(p) = url_password(s) {
                out.insert(p.to_string());
            }
        }
        // A numeric PIN or key is still a secret.
        Value::Number(n) if secret => {
            out.insert(n.to_string());
        }
        Value::Sequence(items) => items.iter().for_each(|i| walk(i, secret, out)),
        Value::Mapping(m) => {
            for (k, v) in m {
                let key_secret = k.as_str().is_some_and(is_secret_key);
                walk(v, secret || key_secret, out);
            }
        }
        Value::Tagged(t) => walk(&t.value, secret, out),
        _ => {}
    }
}

/// The password of `scheme://user:password@host...`, if any.
fn url_password(s: &str) -> Option<&str> {
    let rest = &s[s.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, pass) = userinfo.split_once(':')?;
    (!pass.is_empty()).then_some(pass)
}

/// Registers the secrets of a loaded config (added to those already registered).
pub fn register(config: &Config) {
    register_values(secrets_of(config));
}

/// Registers secret values directly (tests, and values that do not come from the
/// config file).
pub fn register_values(values: impl IntoIterator<Item = String>) {
    let mut all = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for v in values {
        if v.len() >= MIN_SECRET_LEN && !all.contains(&v) {
            all.push(v);
        }
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`MASK`]; borrowed when there was
/// nothing to replace (the common case costs one scan per secret).
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// A `tracing_subscriber` writer: stderr, with secrets redacted. The fmt layer
/// writes each event with one `write` call, so a secret is never split across
/// two calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr().lock().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

/// Replaces the process panic hook with one that redacts the message (the host's
/// own panics; a plugin's panics inside its calls reach the log as errors).
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.to_string();
        if redact(&msg) == msg {
            previous(info);
        } else {
            let thread = std::thread::current();
            eprintln!(
                "thread '{}' {}",
                thread.name().unwrap_or("<unnamed>"),
                redact(&msg)
            );
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "api_key",
            "apiKey",
            "API-KEY",
            "token",
            "client_secret",
            "access_key_secret",
            "private_key_file_password",
            "license_key",
            "auth_password",
            "priv_password",
            "community",
            "key",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "url",
            "username",
            "endpoint",
            "keys_total",
            "monkey",
            "topic",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn collects_nested_values_and_url_passwords() {
        let c = Config::parse(
            "plugins: {dir: /x}\nhttp: {token: api-token-1}\nintegrations:\n  a:\n    url: https://bob:url-pass-1@db:8086/write\n    auth: {password: nested-pass-1, user: bob}\n    headers: [{name: X, api_key: list-key-1}]\n    port: 1234\n  b:\n    token: abc\n",
            |_| None,
        )
        .unwrap();
        let s = secrets_of(&c);
        for want in ["api-token-1", "url-pass-1", "nested-pass-1", "list-key-1"] {
            assert!(s.contains(&want.to_string()), "{want} in {s:?}");
        }
        // Too short to register, not secret-named.
        assert!(!s.contains(&"abc".to_string()));
        assert!(!s.contains(&"bob".to_string()));
        assert!(!s.contains(&"1234".to_string()));
    }

    #[test]
    fn redacts_longest_first() {
        register_values(["hunter2-long".to_string(), "hunter2".to_string()]);
        assert_eq!(
            redact("x hunter2-long y hunter2 z"),
            format!("x {MASK} y {MASK} z")
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url_password("https://u:p4ss@h/x"), Some("p4ss"));
        assert_eq!(url_password("https://u@h/x"), None);
        assert_eq!(url_password("https://h/x?a=b@c"), None);
        assert_eq!(url_password("not a url"), None);
    }
}
