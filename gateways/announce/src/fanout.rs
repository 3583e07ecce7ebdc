//! Delivery of one announcement to many addresses: in batches, paced to
//! the configured rate, from the server's JID when the server permits it,
//! and through a reconnect of the link without sending anything twice or
//! skipping anyone (a batch is queued whole or refused whole, and a
//! refused batch is offered again once the link is back).

use std::collections::BTreeSet;
use std::time::Duration;

use satellite::jid::{BareJid, Jid};
use satellite::xmpp::message::{Lang, Message, MessageType};
use satellite::{Context, Element, SendError};
use tokio::time::{Instant, sleep, sleep_until};

use crate::settings::{MessageKind, Settings};

/// How long a refused batch is offered again before its addresses count
/// as not reached.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// One address to deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An online resource.
    Online(Jid),
    /// A user seen before and offline now: the bare JID, so the server's
    /// offline storage keeps it.
    Offline(BareJid),
}

/// What a delivery reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Distinct users reached online.
    pub users: usize,
    /// Resources reached online.
    pub resources: usize,
    /// Offline users the message was stored for.
    pub offline: usize,
    /// Addresses that could not be reached (the link stayed down, or the
    /// component stopped).
    pub failed: usize,
    /// Whether it went out as the server (else from the component).
    pub as_server: bool,
}

impl Report {
    /// The report's text for the admin.
    pub fn text(&self, privileged: bool) -> String {
        let mut text = format!(
            "Delivered to {} user{} ({} resource{}) online",
            self.users,
            plural(self.users),
            self.resources,
            plural(self.resources)
        );
        if self.offline > 0 {
            text.push_str(&format!(
                ", and stored for {} offline user{}",
                self.offline,
                plural(self.offline)
            ));
        }
        text.push_str(&format!("; {} could not be reached.", self.failed));
        if !privileged {
            text.push_str(
                " The server grants this service no privileges (XEP-0356): only users who subscribed to it were reached.",
            );
        }
        text
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Sends `body` to every target, paced by `settings`.
pub async fn deliver(
    cx: &Context,
    settings: &Settings,
    targets: Vec<Target>,
    body: &str,
) -> Report {
    let mut report = Report::default();
    let mut users = BTreeSet::new();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut had_privileges = false;
    for batch in targets.chunks(settings.batch.max(1)) {
        let deadline = Instant::now() + RETRY_FOR;
        let outcome = loop {
            if cx.is_shutting_down() {
                break Err(SendError::Closed);
            }
            if !cx.is_connected() {
                sleep(Duration::from_millis(50)).await;
                continue;
            }
            let mut privileges = cx.privileges();
            if privileges.is_none() && had_privileges {
                // A new connection: the server grants again shortly.
                privileges = cx.wait_privileges(settings.privileges_wait).await;
            }
            let as_server = privileges
                .as_ref()
                .filter(|p| settings.from_server && p.message_outgoing);
            had_privileges |= as_server.is_some();
            report.as_server = as_server.is_some();
            let stanzas: Vec<Element> = batch
                .iter()
                .map(|target| {
                    let message = message(cx, settings.message_type, target, body);
                    match as_server {
                        Some(p) => p.wrap_message(message, cx.jid()),
                        None => message.into(),
                    }
                })
                .collect();
            match cx.send_many(stanzas).await {
                Ok(()) => break Ok(()),
                Err(SendError::QueueFull(_)) if Instant::now() < deadline => {
                    sleep(Duration::from_millis(200)).await;
                }
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => {
                for target in batch {
                    match target {
                        Target::Online(jid) => {
                            report.resources += 1;
                            users.insert(jid.to_bare());
                        }
                        Target::Offline(_) => report.offline += 1,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, count = batch.len(), "announce: could not send a batch");
                report.failed += batch.len();
            }
        }
        sent += batch.len();
        if settings.rate > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / f64::from(settings.rate));
            sleep_until(due).await;
        }
    }
    report.users = users.len();
    report
}

/// The announcement for one target: the configured type online, `normal`
/// for offline storage (servers store no headlines).
fn message(cx: &Context, kind: MessageKind, target: &Target, body: &str) -> Message {
    let (type_, to) = match target {
        Target::Online(jid) => (
            match kind {
                MessageKind::Headline => MessageType::Headline,
                MessageKind::Chat => MessageType::Chat,
                MessageKind::Normal => MessageType::Normal,
            },
            jid.clone(),
        ),
        Target::Offline(jid) => (MessageType::Normal, Jid::from(jid.clone())),
    };
    let mut message = Message::new_with_type(type_, Some(to));
    message.id = Some(satellite::xmpp::message::Id(cx.next_id()));
    message.bodies.insert(Lang(String::new()), body.to_owned());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_words_counts() {
        let report = Report {
            users: 3,
            resources: 5,
            offline: 1,
            failed: 0,
            as_server: true,
        };
        assert_eq!(
            report.text(true),
            "Delivered to 3 users (5 resources) online, and stored for 1 offline user; 0 could not be reached."
        );
        assert!(Report::default().text(false).contains("subscribed"));
    }
}
