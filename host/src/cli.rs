//! Command-line interface: `run`, `plugins list`, `plugins inspect`, `version`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::plugin::{files, library};

/// tfo-agent: telemetry agent whose integrations are hot-swappable plugins.
#[derive(Parser, Debug)]
#[command(name = "tfo-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent.
    Run {
        /// Config file.
        #[arg(long, default_value = "configs/tfo-agent.yaml")]
        config: PathBuf,
        /// Collect once from every source, print what each sink would send, exit.
        #[arg(long)]
        once: bool,
    },
    /// Check a config file and every enabled plugin's own config, printing each
    /// problem with its path.
    Validate {
        /// Config file.
        #[arg(long, default_value = "configs/tfo-agent.yaml")]
        config: PathBuf,
    },
    /// Inspect plugin files without enabling them.
    Plugins {
        /// What to inspect.
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Print the agent and plugin-api versions.
    Version,
}

/// `plugins` subcommands.
#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// List the plugins in a directory with their compatibility.
    List {
        /// Plugin directory.
        #[arg(long)]
        dir: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Conformance kit: exercise a plugin's contract in a scratch host and report
    /// pass/fail per point.
    Check {
        /// The plugin file.
        file: PathBuf,
        /// The plugin's own config (YAML or JSON mapping of its keys); default `{}`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Deadline for each call, in seconds.
        #[arg(long, default_value_t = 10)]
        deadline: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin file's descriptor and whether this agent can load it.
    Inspect {
        /// The plugin file.
        file: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn scratch_shadow() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("tfo-agent-inspect-")
        .tempdir()
        .map_err(|e| format!("cannot create a scratch directory: {e}"))
}

/// `plugins inspect FILE`: exit 0 when compatible, 1 with a one-line reason when not.
pub fn inspect(file: &Path, json: bool) -> i32 {
    let shadow = match scratch_shadow() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let r = library::inspect(file, shadow.path(), true);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("serializable")
        );
    } else if let Some(d) = &r.descriptor {
        println!("file:               {}", r.file.display());
        println!("name:               {}", d.name);
        println!("version:            {}", d.version);
        println!("kind:               {}", d.kind);
        println!("data types:         {}", d.data_types.join(", "));
        println!("description:        {}", d.description);
        println!("plugin-api version: {}", d.plugin_api_version);
        println!("sha256:             {}", r.sha256.as_deref().unwrap_or("-"));
        if let Some(c) = &r.abi_compatibility {
            println!("ABI:                {c}");
        }
        println!("compatible:         yes ({})", r.host_abi);
    }
    if r.compatible {
        0
    } else {
        eprintln!(
            "{}: not loadable: {}",
            file.display(),
            r.reason.as_deref().unwrap_or("unknown reason")
        );
        1
    }
}

/// `plugins list --dir DIR`: every plugin file with its compatibility; exit 1 when
/// any is not loadable or two claim one name.
pub fn list(dir: &Path, json: bool) -> i32 {
    let shadow = match scratch_shadow() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let cands = match files::candidates(dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return 2;
        }
    };
    let mut rows: Vec<library::Inspection> = cands
        .iter()
        .map(|(_, p)| library::inspect(p, shadow.path(), true))
        .collect();
    // Two files claiming one name: both are flagged.
    let mut by_name: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        if let Some(d) = &r.descriptor {
            by_name
                .entry(files::normalize_name(&d.name))
                .or_default()
                .push(i);
        }
    }
    for (name, idx) in by_name.into_iter().filter(|(_, v)| v.len() > 1) {
        let paths: Vec<String> = idx
            .iter()
            .map(|&i| rows[i].file.display().to_string())
            .collect();
        for &i in &idx {
            rows[i].compatible = false;
            rows[i].reason = Some(format!(
                "duplicate plugin name {name:?}: claimed by {}",
                paths.join(" and ")
            ));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serializable")
        );
    } else {
        println!(
            "{:<24} {:<12} {:<12} {:<10} {:<18} {:<17} COMPATIBLE",
            "NAME", "VERSION", "KIND", "API", "DATA", "SHA256"
        );
        for r in &rows {
            let (name, version, kind, api, data) = match &r.descriptor {
                Some(d) => (
                    d.name.clone(),
                    d.version.clone(),
                    d.kind.to_string(),
                    d.plugin_api_version.clone(),
                    d.data_types.join(","),
                ),
                None => (
                    r.file
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
            };
            let sha = r.sha256.as_deref().map(|s| &s[..16]).unwrap_or("-");
            let compat = if r.compatible {
                "yes".to_string()
            } else {
                format!("no: {}", r.reason.as_deref().unwrap_or(""))
            };
            println!("{name:<24} {version:<12} {kind:<12} {api:<10} {data:<18} {sha:<17} {compat}");
        }
    }
    if rows.iter().all(|r| r.compatible) {
        0
    } else {
        1
    }
}

/// `plugins check FILE`: exit 0 when every point passes, 1 otherwise.
pub fn check(file: &Path, config: Option<&Path>, deadline: u64, json: bool) -> i32 {
    let cfg = match config {
        None => serde_json::json!({}),
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_yaml::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                eprintln!(
                    "error: {}: must be a mapping of the plugin's keys",
                    p.display()
                );
                return 2;
            }
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return 2;
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let points = rt.block_on(crate::conformance::check(
        file,
        cfg,
        std::time::Duration::from_secs(deadline),
    ));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&points).expect("serializable")
        );
    } else {
        for p in &points {
            println!(
                "{} {:<30} {}",
                if p.pass { "PASS" } else { "FAIL" },
                p.name,
                p.detail
            );
        }
    }
    let failed = points.iter().filter(|p| !p.pass).count();
    if !json {
        println!("{} passed, {failed} failed", points.len() - failed);
    }
    i32::from(failed > 0)
}
