//! The agent's config: `${VAR}` substitution, YAML parsing, validation and the
//! split of integration blocks, on arbitrary text. Errors are fine; panics are not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |k: &str| match k {
        "HOST" => Some("db1".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let _ = tfo_agent::config::substitute_env(text, env);
    if let Ok(c) = tfo_agent::config::Config::parse(text, env) {
        let _ = c.instance_specs();
        let _ = c.manager_options();
        let _ = tfo_agent::redact::secrets_of(&c);
    }
});
