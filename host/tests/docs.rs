//! Every plugin is documented and configurable the way the README promises: a page
//! `docs/integrations/<name>.md` that names the plugin's module docs' protocol and
//! is linked from the docs index, and a block for it in the shipped config.

use std::{fs, path::PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Plugin directories (`plugins/<name>` with a Cargo.toml; `common` is a library).
fn plugin_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("plugins"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "common")
        .collect();
    names.sort();
    names
}

#[test]
fn every_plugin_has_a_docs_page_linked_from_the_index() {
    let index = fs::read_to_string(root().join("docs/integrations/README.md"))
        .expect("docs/integrations/README.md (the index of integration pages)");
    let mut missing = Vec::new();
    for name in plugin_names() {
        let page = root().join(format!("docs/integrations/{name}.md"));
        match fs::read_to_string(&page) {
            Err(_) => missing.push(format!("{name}: no {}", page.display())),
            Ok(text) => {
                if text.trim().lines().count() < 10 {
                    missing.push(format!("{name}: the page is a stub"));
                }
                if !index.contains(&format!("({name}.md)")) {
                    missing.push(format!(
                        "{name}: not linked from docs/integrations/README.md"
                    ));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_plugin_has_a_block_in_the_shipped_config() {
    let cfg = fs::read_to_string(root().join("configs/tfo-agent.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&cfg).unwrap();
    let integrations = v["integrations"].as_mapping().unwrap();
    let mut missing = Vec::new();
    for name in plugin_names() {
        // An instance named after the plugin, or one whose `plugin:` names it.
        let found = integrations.iter().any(|(k, block)| {
            k.as_str() == Some(name.as_str())
                || block["plugin"].as_str() == Some(name.replace('_', "-").as_str())
        });
        if !found {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "no block in configs/tfo-agent.yaml for: {missing:?}"
    );
}
