//! `satellite man`: the manual pages, generated from the command line
//! definition so that they say what `--help` says.

use std::io::Write;
use std::path::Path;

use clap_mangen::Man;

/// What satellite(1) says beyond the options: the files, the environment
/// and where to read on (raw roff, after the generated sections).
const MORE: &str = r#".SH FILES
.TP
\fI/etc/satellite/NAME.toml\fR
The config of the systemd instance satellite@NAME (one TOML file: a
[[component]] table per subdomain, [log], [metrics]).
.TP
\fI/etc/satellite/NAME.secret\fR
Its shared secret, root-only, handed to the service with LoadCredential=.
.TP
\fI/var/lib/satellite/NAME\fR
The instance's state (StateDirectory=): upload's files and catalog, MUC rooms.
.SH ENVIRONMENT
.TP
\fBCREDENTIALS_DIRECTORY\fR
Set by systemd's LoadCredential=: a relative secret_file (and every other
secret file) is looked up here first, then next to the config file.
.TP
\fBSTATE_DIRECTORY\fR
Set by systemd's StateDirectory=: the default storage of the services.
.TP
\fBRUST_LOG\fR
A tracing filter that overrides [log] level.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBsystemd.exec\fR(5), \fBprosodyctl\fR(1), \fBejabberdctl\fR(8);
the README (deployment, configuration reference, metrics, writing a gateway).
"#;

/// Without `dir`, prints satellite(1) on stdout; with it, writes
/// satellite.1 and one satellite-COMMAND.1 per command into `dir`.
pub fn write(cmd: clap::Command, dir: Option<&Path>) -> std::io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        return render(&cmd, true, &mut out);
    };
    std::fs::create_dir_all(dir)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = dir.join(Man::new(sub.clone()).get_filename());
        render(sub, false, &mut std::fs::File::create(path)?)?;
    }
    let path = dir.join(Man::new(cmd.clone()).get_filename());
    render(&cmd, true, &mut std::fs::File::create(path)?)
}

/// One page; the main one ends with [`MORE`].
fn render(cmd: &clap::Command, main: bool, out: &mut dyn Write) -> std::io::Result<()> {
    Man::new(cmd.clone())
        .manual("satellite manual")
        .render(out)?;
    if main {
        out.write_all(MORE.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_gets_a_page_that_names_its_options() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(crate::Cli::command(), Some(dir.path())).expect("pages");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "satellite-check.1",
                "satellite-ejabberd-config.1",
                "satellite-man.1",
                "satellite-prosody-config.1",
                "satellite-run.1",
                "satellite.1",
            ]
        );
        let main = std::fs::read_to_string(dir.path().join("satellite.1")).expect("page");
        assert!(main.starts_with(".ie \\n(.g .ds Aq") || main.contains(".TH satellite 1"));
        assert!(main.contains("satellite\\-run(1)"), "{main}");
        assert!(main.contains("CREDENTIALS_DIRECTORY"));
        let check = std::fs::read_to_string(dir.path().join("satellite-check.1")).expect("page");
        assert!(check.contains("no\\-bind"), "{check}");
    }
}
