//! The command line of a gateway binary ([`super::main`]): `-c FILE` (or
//! the file alone), `--help`, `--version`.

use std::ffi::OsString;
use std::path::PathBuf;

/// Who a gateway binary is, for `--help` and `--version`; made from the
/// calling crate's `Cargo.toml` by [`program!`](crate::program).
#[derive(Debug, Clone)]
pub struct Program {
    /// The command's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// One line saying what it does.
    pub about: String,
}

impl Program {
    /// A program called `name` at `version`, described by `about`.
    pub fn new(name: &str, version: &str, about: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            about: about.to_owned(),
        }
    }

    /// The program of a gateway that did not say: named after the command
    /// it was started as, with the framework's version.
    pub(super) fn from_command_line() -> Self {
        let name = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "gateway".to_owned());
        Self::new(
            &name,
            &format!("(satellite framework {})", env!("CARGO_PKG_VERSION")),
            "An XMPP external component (XEP-0114) built on satellite.",
        )
    }

    /// The `--help` text.
    pub(super) fn help(&self, default_path: &str) -> String {
        let name = &self.name;
        format!(
            "{about}\n\n\
             Usage: {name} [-c FILE]\n       {name} FILE\n\n\
             Options:\n  \
             -c, --config FILE  the satellite config file (default: {default_path})\n  \
             -h, --help         print this help\n  \
             -V, --version      print the version\n\n\
             Connects every [[component]] of FILE and serves until SIGTERM or SIGINT;\n\
             SIGHUP re-reads FILE. A relative secret_file is looked up in\n\
             $CREDENTIALS_DIRECTORY (systemd LoadCredential=), then next to FILE.\n\n\
             Exit codes: 0 stopped; 1 a component cannot start, or a runtime error;\n\
             2 the config file cannot be read or parsed, or the command line is wrong.\n",
            about = self.about.trim_end(),
        )
    }
}

/// Fills a [`Program`] from the calling crate's `Cargo.toml`: its package
/// name, version and description.
///
/// ```no_run
/// # use satellite::{Component, ComponentConfig};
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     satellite::serve::main_with(satellite::program!(), "echo.toml", |c: &ComponentConfig| {
///         Ok(Component::builder(c.clone()))
///     })
///     .await
/// }
/// ```
#[macro_export]
macro_rules! program {
    () => {
        $crate::serve::Program::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    };
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// Serve this config file.
    Serve(PathBuf),
    /// Print the help.
    Help,
    /// Print the version.
    Version,
}

/// Reads the arguments (without the program name). The error says what
/// is wrong, for a line on stderr before the usage.
pub(super) fn parse(
    default_path: &str,
    mut args: impl Iterator<Item = OsString>,
) -> Result<Action, String> {
    let mut config: Option<PathBuf> = None;
    let mut set = |path: PathBuf| {
        if config.replace(path).is_some() {
            Err("the config file is given twice; expected one".to_owned())
        } else {
            Ok(())
        }
    };
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        match text.as_ref() {
            "-h" | "--help" => return Ok(Action::Help),
            "-V" | "--version" => return Ok(Action::Version),
            "-c" | "--config" => match args.next() {
                Some(path) => set(PathBuf::from(path))?,
                None => return Err(format!("{text} needs a FILE")),
            },
            _ => {
                if let Some(path) = text.strip_prefix("--config=") {
                    set(PathBuf::from(path))?;
                } else if text.starts_with('-') && text.len() > 1 {
                    return Err(format!("unknown option `{text}`"));
                } else {
                    set(PathBuf::from(arg))?;
                }
            }
        }
    }
    Ok(Action::Serve(
        config.unwrap_or_else(|| PathBuf::from(default_path)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Action, String> {
        parse("echo.toml", args.iter().map(OsString::from))
    }

    #[test]
    fn reads_the_config_file_help_and_version() {
        let serve = |p: &str| Ok(Action::Serve(PathBuf::from(p)));
        assert_eq!(run(&[]), serve("echo.toml"));
        assert_eq!(run(&["-c", "/etc/a.toml"]), serve("/etc/a.toml"));
        assert_eq!(run(&["--config", "a.toml"]), serve("a.toml"));
        assert_eq!(run(&["--config=a.toml"]), serve("a.toml"));
        assert_eq!(run(&["a.toml"]), serve("a.toml"));
        assert_eq!(run(&["--help"]), Ok(Action::Help));
        assert_eq!(run(&["-c", "a.toml", "-h"]), Ok(Action::Help));
        assert_eq!(run(&["-V"]), Ok(Action::Version));
        assert_eq!(run(&["--version"]), Ok(Action::Version));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert_eq!(run(&["--nope"]), Err("unknown option `--nope`".to_owned()));
        assert_eq!(run(&["-c"]), Err("-c needs a FILE".to_owned()));
        assert!(run(&["a.toml", "b.toml"]).is_err());
    }

    #[test]
    fn help_names_the_program_and_the_default_file() {
        let help = Program::new("satellite-echo", "0.1.0", "Echoes.").help("echo.toml");
        assert!(
            help.starts_with("Echoes.\n\nUsage: satellite-echo [-c FILE]"),
            "{help}"
        );
        assert!(help.contains("(default: echo.toml)"), "{help}");
    }
}
