//! The `tfo-agent` binary.

use clap::Parser;
use tfo_agent::cli::{self, Cli, Command, PluginsCommand};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Plugins {
            command: PluginsCommand::Inspect { file, json },
        } => cli::inspect(&file, json),
        Command::Plugins {
            command: PluginsCommand::List { dir, json },
        } => cli::list(&dir, json),
        Command::Version => {
            println!(
                "tfo-agent {} ({})",
                env!("CARGO_PKG_VERSION"),
                tfo_agent::plugin::library::host_abi_info()
            );
            0
        }
        Command::Run { config } => {
            init_logging();
            tfo_agent::agent::run(&config)
        }
    };
    std::process::exit(code);
}

fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("TFO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
