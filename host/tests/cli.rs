//! `tfo-agent plugins inspect|list` from the built binary: descriptors for good
//! files, a non-zero exit with a one-line reason for everything else, never a crash.

mod common;

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

use common::*;

fn agent(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_file(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn inspect_a_compatible_plugin() {
    let f = fixture("counting_sink");
    let (code, out, _) = agent(&["plugins", "inspect", f.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["compatible"], true);
    assert_eq!(v["descriptor"]["name"], "counting-sink");
    assert_eq!(v["descriptor"]["version"], "1.0.0-a");
    assert_eq!(v["descriptor"]["kind"], "sink");
    assert_eq!(
        v["descriptor"]["data_types"],
        serde_json::json!(["metrics"])
    );
    assert_eq!(
        v["descriptor"]["plugin_api_version"],
        tfo_plugin_api::PLUGIN_API_VERSION
    );
    assert_eq!(
        v["sha256"].as_str().unwrap(),
        tfo_agent::plugin::files::sha256_hex(&fs::read(&f).unwrap())
    );
    let (code, out, _) = agent(&["plugins", "inspect", f.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(out.contains("compatible:         yes"), "{out}");
}

#[test]
fn inspect_refuses_bad_files_with_one_line_and_never_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = fs::read(fixture("counting_sink")).unwrap();
    write_file(&d.join("truncated.so"), &good[..good.len() / 2]);
    write_file(&d.join("header-only.so"), &good[..64]);
    write_file(&d.join("empty.so"), b"");
    write_file(
        &d.join("garbage.so"),
        &(0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    );
    let mut flipped = good.clone();
    for i in (4096..flipped.len()).step_by(4099) {
        flipped[i] ^= 0xff;
    }
    write_file(
        &d.join("bitflipped-tail-intact-header.so"),
        &flipped[..flipped.len() - 1000],
    );
    let libz = fs::canonicalize("/lib/x86_64-linux-gnu/libz.so.1").expect("zlib1g installed");
    write_file(&d.join("libz-copy.so"), &fs::read(libz).unwrap());
    let incompatible = fixture("incompatible_abi");
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (d.join("truncated.so"), "truncated"),
        (d.join("header-only.so"), ""),
        (d.join("empty.so"), "empty"),
        (d.join("garbage.so"), "no ELF header"),
        (d.join("bitflipped-tail-intact-header.so"), "truncated"),
        (d.join("libz-copy.so"), "not a tfo-agent plugin"),
        (d.join("does-not-exist.so"), "cannot stat"),
        (incompatible.clone(), "incompatible ABI: built against tfo-plugin-api 0.1.1 layout=abi-break-fixture, host speaks tfo-plugin-api 0.1.1 layout=standard: layout of type Metric differs"),
    ];
    for (path, needle) in cases {
        let (code, _, err) = agent(&["plugins", "inspect", path.to_str().unwrap()]);
        assert_eq!(
            code,
            Some(1),
            "{}: exit {code:?} (None = killed by a signal); stderr {err}",
            path.display()
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{}: {err}", path.display());
    }
}

#[test]
fn list_shows_every_plugin_and_flags_duplicates() {
    let (dir, _shadow) = dirs();
    let d = dir.path();
    install(d, &fixture("counting_sink"), "counting_sink");
    install(d, &fixture("panicking_sink"), "panicking_sink");
    let (code, out, _) = agent(&["plugins", "list", "--dir", d.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v
        .iter()
        .map(|r| r["descriptor"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["counting-sink", "panicking-sink"]);

    // A second file claiming `counting-sink`: both are flagged, exit 1.
    install(d, &fixture("counting_sink_b"), "counting_sink_b");
    let (code, out, _) = agent(&["plugins", "list", "--dir", d.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(
        out.matches("duplicate plugin name \"counting-sink\"")
            .count(),
        2,
        "{out}"
    );
}

#[test]
fn plugins_check_reports_each_point() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    fs::write(
        &cfg,
        format!("output: {}\n", dir.path().join("o.txt").display()),
    )
    .unwrap();
    let f = fixture("counting_sink");
    let (code, out, err) = agent(&[
        "plugins",
        "check",
        f.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    for point in [
        "trust",
        "load",
        "descriptor",
        "config: unknown key refused",
        "config: given config accepted",
        "start",
        "export reference batch",
        "health",
        "shutdown within deadline",
        "unload",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("PASS") && l.contains(point)),
            "{point} not passed:\n{out}"
        );
    }

    // A plugin whose create always fails.
    let (code, out, _) = agent(&[
        "plugins",
        "check",
        fixture("failing_init").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(out.contains("FAIL config: given config accepted"), "{out}");

    // A plugin that leaves a thread running: kept loaded, reported, no crash.
    let leak = dir.path().join("leak.yaml");
    fs::write(&leak, "leak_thread: true\n").unwrap();
    for _ in 0..3 {
        let (code, out, err) = agent(&[
            "plugins",
            "check",
            fixture("slow_shutdown_sink").to_str().unwrap(),
            "--config",
            leak.to_str().unwrap(),
        ]);
        assert_eq!(
            code,
            Some(1),
            "exit {code:?} (None = killed by a signal): {out}{err}"
        );
        assert!(
            out.contains("FAIL shutdown within deadline") || out.contains("FAIL unload"),
            "{out}"
        );
    }
}
