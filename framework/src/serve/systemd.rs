//! What systemd hears (`Type=notify`): READY, RELOADING, STOPPING,
//! WATCHDOG, and a one-line STATUS that `systemctl status` shows: how
//! many components are connected, why the others are not, and what the
//! last reload left out.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::component::LinkStatus;

/// STATUS= is one line; longer ones are cut here.
const STATUS_MAX: usize = 1000;

/// Sends notifications; nothing happens outside systemd.
pub(super) fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify");
    }
}

/// RELOADING=1 with the timestamp systemd wants with it.
pub(super) fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    notify(&states);
}

/// Sends STATUS=`line` (newlines flattened, cut to a sane length).
pub(super) fn status(line: &str) {
    let mut line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > STATUS_MAX {
        let mut cut = STATUS_MAX;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    notify(&[NotifyState::Status(&line)]);
}

/// Half of `WatchdogSec=`, if set.
pub(super) fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// The status line: `2/3 connected; rooms.example.org: <why>; <notes>`.
pub(super) fn status_line<'a>(
    links: impl IntoIterator<Item = (&'a str, &'a LinkStatus)>,
    notes: &[String],
) -> String {
    let mut total = 0;
    let mut connected = 0;
    let mut down = Vec::new();
    for (jid, status) in links {
        total += 1;
        match status {
            LinkStatus::Connected => connected += 1,
            other => down.push(format!("{jid}: {}", describe(other))),
        }
    }
    let mut parts = vec![if connected == total {
        format!("{total} connected")
    } else {
        format!("{connected}/{total} connected")
    }];
    parts.extend(down);
    parts.extend(notes.iter().cloned());
    parts.join("; ")
}

/// A link's state in words, for STATUS= and the log.
pub(super) fn describe(status: &LinkStatus) -> String {
    match status {
        LinkStatus::Connecting => "connecting".to_owned(),
        LinkStatus::Connected => "connected".to_owned(),
        LinkStatus::Disconnected { error } if error.starts_with("refused") => format!(
            "{error} (does the server declare this component, with the same secret?); retrying"
        ),
        LinkStatus::Disconnected { error } => format!("not connected: {error}; retrying"),
        LinkStatus::Stopped => "stopped".to_owned(),
        LinkStatus::Failed { error } => format!("failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_the_links_that_are_down_and_why() {
        let up = LinkStatus::Connected;
        let refused = LinkStatus::Disconnected {
            error: "refused: not-authorized".to_owned(),
        };
        let line = status_line(
            [("echo.example.org", &up), ("rooms.example.org", &refused)],
            &["reload: x.example.org left out: no such file".to_owned()],
        );
        assert_eq!(
            line,
            "1/2 connected; rooms.example.org: refused: not-authorized (does the server declare this component, with the same secret?); retrying; reload: x.example.org left out: no such file"
        );
        assert_eq!(status_line([("a", &up)], &[]), "1 connected");
    }
}
