//! The `tfo-agent` binary.

use clap::Parser;
use tfo_agent::cli::{self, Cli, Command, PluginsCommand};

fn main() {
    let cli = Cli::parse();
    tfo_agent::redact::install_panic_hook();
    if matches!(cli.command, Command::Plugins { .. }) {
        // One-shot inspection: resolve every symbol now, so a plugin with an
        // unresolvable symbol is reported instead of failing later.
        tfo_agent::plugin::library::set_bind_now(true);
    }
    let code = match cli.command {
        Command::Plugins {
            command: PluginsCommand::Inspect { file, json },
        } => cli::inspect(&file, json),
        Command::Plugins {
            command: PluginsCommand::List { dir, json },
        } => cli::list(&dir, json),
        Command::Plugins {
            command:
                PluginsCommand::Check {
                    file,
                    config,
                    deadline,
                    json,
                },
        } => cli::check(&file, config.as_deref(), deadline, json),
        Command::Version => {
            println!(
                "tfo-agent {} ({})",
                env!("CARGO_PKG_VERSION"),
                tfo_agent::plugin::library::host_abi_info()
            );
            0
        }
        Command::Run { config, once } => {
            init_logging(if once { "warn" } else { "info" });
            if once {
                tfo_agent::agent::run_once(&config)
            } else {
                tfo_agent::agent::run(&config)
            }
        }
        Command::Validate { config } => {
            init_logging("warn");
            tfo_agent::agent::validate(&config)
        }
    };
    std::process::exit(code);
}

/// Logs to stderr; `TFO_LOG` (e.g. `debug`, `tfo_agent=trace`) overrides the level.
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("TFO_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    fmt()
        .with_env_filter(filter)
        .with_writer(tfo_agent::redact::RedactingStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
