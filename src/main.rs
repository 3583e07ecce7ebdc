//! `satellite`: runs XMPP external components from one TOML file.

#![forbid(unsafe_code)]

mod check;
mod manual;
mod server_config;
mod services;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use satellite::Config;

/// Exit code: the config file cannot be read or parsed, or a
/// `[[component]]` key or secret is wrong.
const EXIT_CONFIG: u8 = 2;
/// Exit code: a component cannot start (service, settings, or what they
/// need: TLS files, listen addresses, directories), or a runtime error.
const EXIT_START: u8 = 1;

/// Run XMPP external components (XEP-0114) from one TOML file.
///
/// Each [[component]] table of the config attaches one service (echo, muc,
/// proxy65, upload) to a server (Prosody, ejabberd, Openfire…) under its
/// own subdomain.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_long_help = "Exit codes of run and check: 0 OK; 1 a component cannot start (its service or \
                       settings, or what they need: TLS files, listen addresses, directories), or \
                       run failed; 2 the config file cannot be read or parsed, or a [[component]] \
                       key or secret is wrong."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect every component and serve until SIGTERM (SIGHUP reloads).
    ///
    /// Refuses to start what `satellite check` refuses. On SIGHUP the
    /// config is read again: a component that cannot start is left out
    /// (logged, and shown in systemd's status) and the others keep
    /// running. Exit codes as for check; 1 also when a service fails to
    /// start or the process fails while running.
    Run {
        /// The config file.
        #[arg(short, long, default_value_os_t = satellite::serve::default_config_path())]
        config: PathBuf,
    },
    /// Validate the config, its secrets and what its services need, without connecting.
    ///
    /// Checks what `run` would refuse: the file and its secrets, each
    /// service's settings, TLS certificates and keys (read and parsed),
    /// listen addresses (bound for a moment), storage directories
    /// (written to), [log] and [metrics]. Run it as the user the service
    /// runs as.
    ///
    /// Exit codes: 0 OK; 1 a component cannot start (its service or
    /// settings, or what they need: TLS files, listen addresses,
    /// directories); 2 the config file cannot be read or parsed, or a
    /// [[component]] key or secret is wrong.
    Check {
        /// The config file.
        #[arg(short, long, default_value_os_t = satellite::serve::default_config_path())]
        config: PathBuf,
        /// Do not test-bind listen addresses (while this config's satellite
        /// runs, they are its own and in use).
        #[arg(long)]
        no_bind: bool,
    },
    /// Print the Prosody lines matching the config (they contain the secrets).
    ///
    /// The output contains each component's shared secret: write it only
    /// where the server's config is kept (e.g. `>> /etc/prosody/prosody.cfg.lua`
    /// or a root-only file), not to a shared terminal log or a ticket.
    ///
    /// Several `-c` print one snippet for several satellite processes
    /// (one systemd instance per config file).
    ProsodyConfig {
        /// The config file (repeat for several processes).
        #[arg(short, long, default_values_os_t = [satellite::serve::default_config_path()])]
        config: Vec<PathBuf>,
    },
    /// Print the ejabberd listener matching the config (it contains the secrets).
    ///
    /// The output contains each component's shared secret: write it only
    /// where the server's config is kept (e.g. a root-only file included
    /// from ejabberd.yml), not to a shared terminal log or a ticket.
    ///
    /// Several `-c` print one snippet for several satellite processes (one
    /// systemd instance per config file): each process gets listeners of
    /// its own, since ejabberd binds every host of a listener to each
    /// connection on it.
    EjabberdConfig {
        /// The config file (repeat for several processes).
        #[arg(short, long, default_values_os_t = [satellite::serve::default_config_path()])]
        config: Vec<PathBuf>,
    },
    /// Print the manual page, or write one page per command into a directory.
    ///
    /// Without DIR, prints satellite(1) (roff) on stdout. With DIR, writes
    /// satellite.1 and satellite-<command>.1 there, e.g.
    /// `satellite man /usr/share/man/man1`.
    Man {
        /// Where to write the pages (a man1 directory).
        dir: Option<PathBuf>,
    },
}

impl Command {
    fn config_path(&self) -> Option<&PathBuf> {
        match self {
            Command::Run { config } | Command::Check { config, .. } => Some(config),
            Command::ProsodyConfig { .. }
            | Command::EjabberdConfig { .. }
            | Command::Man { .. } => None,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Man { dir } = &cli.command {
        return match manual::write(Cli::command(), dir.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_START)
            }
        };
    }
    if let Command::ProsodyConfig { config: paths } | Command::EjabberdConfig { config: paths } =
        &cli.command
    {
        let mut configs = Vec::new();
        for path in paths {
            match Config::load(path) {
                Ok(c) => configs.push(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
        let snippet = match &cli.command {
            Command::ProsodyConfig { .. } => server_config::prosody(&configs),
            _ => server_config::ejabberd(&configs),
        };
        for warning in &snippet.warnings {
            eprintln!("warning: {warning}");
        }
        print!("{}", snippet.text);
        return ExitCode::SUCCESS;
    }
    let Some(path) = cli.command.config_path().cloned() else {
        return ExitCode::SUCCESS;
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = match cli.command {
        Command::Run { .. } => {
            satellite::serve::init_logging(&config.log);
            match check::check(&config, true) {
                Ok(()) => satellite::serve::serve(&path, config, services::factory).await,
                Err(e) => Err(e),
            }
        }
        Command::Check { no_bind, .. } => check::check(&config, !no_bind).map(|()| {
            println!("{}: OK", path.display());
            for c in &config.components {
                let service = c.service.as_deref().unwrap_or("-");
                println!("  {} ({service}) -> {}", c.jid, c.server);
            }
        }),
        Command::ProsodyConfig { .. } | Command::EjabberdConfig { .. } | Command::Man { .. } => {
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_START)
        }
    }
}
