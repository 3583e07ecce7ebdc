//! `satellite`: runs XMPP external components from one TOML file.

#![forbid(unsafe_code)]

mod server_config;
mod services;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use satellite::Config;

/// Run XMPP external components (XEP-0114) from one TOML file.
///
/// Each [[component]] table of the config attaches one service (echo, …)
/// to a server (Prosody, ejabberd, Openfire…) under its own subdomain.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect every component and serve until SIGTERM (SIGHUP reloads).
    Run {
        /// The config file.
        #[arg(short, long, default_value_os_t = satellite::serve::default_config_path())]
        config: PathBuf,
    },
    /// Validate the config and its secrets without connecting.
    Check {
        /// The config file.
        #[arg(short, long, default_value_os_t = satellite::serve::default_config_path())]
        config: PathBuf,
    },
    /// Print the Prosody `Component` lines matching the config.
    ProsodyConfig {
        /// The config file.
        #[arg(short, long, default_value_os_t = satellite::serve::default_config_path())]
        config: PathBuf,
    },
    /// Print the ejabberd `ejabberd_service` listener matching the config.
    EjabberdConfig {
        /// The config file.
        #[arg(short, long, default_value_os_t = satellite::serve::default_config_path())]
        config: PathBuf,
    },
}

impl Command {
    fn config_path(&self) -> &PathBuf {
        match self {
            Command::Run { config }
            | Command::Check { config }
            | Command::ProsodyConfig { config }
            | Command::EjabberdConfig { config } => config,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.command.config_path().clone();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run { .. } => {
            satellite::serve::init_logging(&config.log);
            satellite::serve::serve(&path, config, services::factory).await
        }
        Command::Check { .. } => satellite::serve::check(&config, &services::factory).map(|()| {
            println!("{}: OK", path.display());
            for c in &config.components {
                let service = c.service.as_deref().unwrap_or("-");
                println!("  {} ({service}) -> {}", c.jid, c.server);
            }
        }),
        Command::ProsodyConfig { .. } => {
            print!("{}", server_config::prosody(&config));
            Ok(())
        }
        Command::EjabberdConfig { .. } => {
            print!("{}", server_config::ejabberd(&config));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
