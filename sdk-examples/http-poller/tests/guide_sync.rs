//! docs/plugin-authoring.md quotes code from this repository: every fenced block
//! right after a `<!-- verbatim: PATH -->` line must be found in PATH as is, and the
//! files of the guide's example (guide/) must be quoted whole. The guide's crate is
//! compiled and tested on its own (guide/tests), so the guide cannot show code that
//! does not build or behaves differently.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (path, quoted text) of every verbatim block in `doc`.
fn verbatim_blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- verbatim: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "no code block after {line:?}");
        let mut text = String::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        out.push((path.to_string(), text));
    }
    out
}

#[test]
fn the_authoring_guide_quotes_compiled_code() {
    let doc_path = repo_root().join("docs/plugin-authoring.md");
    let Ok(doc) = std::fs::read_to_string(&doc_path) else {
        // Built outside the agent's repository (a vendor's copy of this example).
        println!(
            "skipped: {} not found, nothing to compare",
            doc_path.display()
        );
        return;
    };
    let blocks = verbatim_blocks(&doc);
    let whole = [
        "sdk-examples/http-poller/guide/Cargo.toml",
        "sdk-examples/http-poller/guide/src/lib.rs",
        "sdk-examples/http-poller/guide/src/errors.rs",
        "sdk-examples/http-poller/guide/tests/plugin.rs",
    ];
    for w in whole {
        assert!(
            blocks.iter().any(|(p, _)| p == w),
            "the guide no longer quotes {w}"
        );
    }
    assert!(blocks.len() >= whole.len() + 3, "{} blocks", blocks.len());
    for (path, text) in &blocks {
        let source = std::fs::read_to_string(repo_root().join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        if whole.contains(&path.as_str()) {
            assert!(
                source == *text,
                "docs/plugin-authoring.md quotes {path}, but the file differs: copy it again"
            );
        } else {
            assert!(
                source.contains(text.as_str()),
                "docs/plugin-authoring.md quotes from {path} a block the file no longer contains:\n{text}"
            );
        }
    }
}
