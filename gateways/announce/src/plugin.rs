//! The announce service's state and its glue to the framework: presences
//! keep the online list (and deliver the MOTD at login), admins' messages
//! start announcements.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use satellite::adhoc::AdhocCommand;
use satellite::jid::{BareJid, FullJid, Jid};
use satellite::xmpp::message::{Lang, Message, MessageType};
use satellite::xmpp::presence::{Presence, Type as PresenceType};
use satellite::{
    BoxError, ComponentConfig, Context, Disco, Flow, HandlerError, Plugin, async_trait,
};

use crate::fanout::{self, Report, Target};
use crate::online::{Change, Online};
use crate::settings::{MessageKind, Settings};
use crate::store::{Motd, Store};

/// Who an announcement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every online resource, once.
    Online,
    /// Online resources, and users seen before who are offline now
    /// (through the server's offline storage).
    All,
}

/// The announce service.
pub struct Announce {
    admins: Vec<BareJid>,
    settings: Settings,
    store: OnceLock<Store>,
    online: Mutex<Online>,
    /// The privileges under which `online` was filled (their address): a
    /// new grant means a new connection, whose presences start afresh.
    epoch: Mutex<usize>,
    motd: Mutex<Option<Motd>>,
    /// One announcement at a time.
    sending: tokio::sync::Mutex<()>,
}

impl Announce {
    /// The service for `config` (its `admins` may announce).
    pub fn new(config: &ComponentConfig, settings: Settings) -> Self {
        Self {
            admins: config.admins.clone(),
            settings,
            store: OnceLock::new(),
            online: Mutex::new(Online::default()),
            epoch: Mutex::new(0),
            motd: Mutex::new(None),
            sending: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether `jid` is one of the service's admins.
    pub fn is_admin(&self, jid: &Jid) -> bool {
        let bare = jid.to_bare();
        self.admins.contains(&bare)
    }

    fn store(&self) -> Result<&Store, HandlerError> {
        self.store
            .get()
            .ok_or_else(|| HandlerError::internal("the announce store is not open"))
    }

    fn online(&self) -> std::sync::MutexGuard<'_, Online> {
        self.online.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Users and resources online now.
    pub fn online_count(&self) -> (usize, usize) {
        let online = self.online();
        let snapshot = online.snapshot();
        (snapshot.len(), snapshot.iter().map(|(_, r)| r.len()).sum())
    }

    /// The current message of the day.
    pub fn motd(&self) -> Option<Motd> {
        self.motd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the message of the day: each user gets it once, at their next
    /// login.
    pub fn set_motd(&self, body: &str) -> Result<(), HandlerError> {
        let motd = self
            .store()?
            .set_motd(body)
            .map_err(HandlerError::internal)?;
        *self.motd.lock().unwrap_or_else(PoisonError::into_inner) = Some(motd);
        Ok(())
    }

    /// Removes the message of the day; false when there was none.
    pub fn delete_motd(&self) -> Result<bool, HandlerError> {
        let deleted = self
            .store()?
            .delete_motd()
            .map_err(HandlerError::internal)?;
        *self.motd.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(deleted)
    }

    /// The addresses an announcement to `audience` goes to now.
    pub fn targets(&self, audience: Audience) -> Result<Vec<Target>, HandlerError> {
        let online = self.online().snapshot();
        let mut targets: Vec<Target> = online
            .iter()
            .flat_map(|(_, resources)| resources.iter().cloned().map(|r| Target::Online(r.into())))
            .collect();
        if audience == Audience::All {
            let seen = self.store()?.users().map_err(HandlerError::internal)?;
            let online: std::collections::BTreeSet<&BareJid> =
                online.iter().map(|(bare, _)| bare).collect();
            targets.extend(
                seen.iter()
                    .filter_map(|jid| BareJid::new(jid).ok())
                    .filter(|jid| !online.contains(jid))
                    .map(Target::Offline),
            );
        }
        Ok(targets)
    }

    /// Sends `body` to `audience`, one announcement at a time, and
    /// returns what it reached.
    pub async fn announce(
        &self,
        cx: &Context,
        audience: Audience,
        body: &str,
    ) -> Result<Report, HandlerError> {
        let _one_at_a_time = self.sending.lock().await;
        let targets = self.targets(audience)?;
        tracing::info!(?audience, targets = targets.len(), "announce: sending");
        Ok(fanout::deliver(cx, &self.settings, targets, body).await)
    }

    /// Whether the current connection has privileged presences.
    fn privileged(&self, cx: &Context) -> bool {
        cx.privileges().is_some_and(|p| p.receives_presences())
    }

    /// Starts an announcement in the background; the report goes to
    /// `report_to` as a message from `from`.
    pub fn start(
        self: &Arc<Self>,
        cx: &Context,
        audience: Audience,
        body: String,
        from: Jid,
        report_to: Jid,
    ) {
        let this = Arc::clone(self);
        let cx2 = cx.clone();
        cx.spawn(async move {
            let privileged = this.privileged(&cx2);
            let text = match this.announce(&cx2, audience, &body).await {
                Ok(report) => report.text(privileged),
                Err(e) => format!("The announcement failed: {:?}", e.into_stanza_error().texts),
            };
            let mut reply = Message::new_with_type(MessageType::Normal, Some(report_to));
            reply.from = Some(from);
            reply.bodies.insert(Lang(String::new()), text);
            if let Err(e) = cx2.send(reply).await {
                tracing::warn!(error = %e, "announce: could not send the delivery report");
            }
        });
    }

    /// A presence from a user to the service.
    async fn presence(&self, cx: &Context, p: &Presence, from: &Jid) -> Result<(), HandlerError> {
        self.new_epoch(cx);
        match (p.type_.clone(), from.try_as_full()) {
            (PresenceType::None, Ok(full)) => {
                let change = self.online().available(full);
                if change == Change::LoggedIn {
                    self.logged_in(cx, full).await?;
                }
            }
            (PresenceType::Unavailable, Ok(full)) => {
                self.online().unavailable(full);
            }
            (PresenceType::Unavailable, Err(bare)) => self.online().gone(bare),
            (PresenceType::Subscribe, _) => {
                let bare = from.to_bare();
                self.store()?
                    .add_subscriber(bare.as_str())
                    .map_err(HandlerError::internal)?;
                let me = Jid::from(cx.jid().clone());
                let to = Jid::from(bare);
                let replies = [
                    Presence::subscribed()
                        .with_from(me.clone())
                        .with_to(to.clone()),
                    // So that their presences reach the service.
                    Presence::subscribe()
                        .with_from(me.clone())
                        .with_to(to.clone()),
                    Presence::available().with_from(me).with_to(to),
                ];
                send_all(cx, replies).await;
            }
            (PresenceType::Unsubscribe, _) => {
                let bare = from.to_bare();
                self.store()?
                    .remove_subscriber(bare.as_str())
                    .map_err(HandlerError::internal)?;
                let me = Jid::from(cx.jid().clone());
                let replies = [Presence::new(PresenceType::Unsubscribed)
                    .with_from(me)
                    .with_to(Jid::from(bare))];
                send_all(cx, replies).await;
            }
            (PresenceType::Probe, _) => {
                let me = Jid::from(cx.jid().clone());
                send_all(
                    cx,
                    [Presence::available().with_from(me).with_to(from.clone())],
                )
                .await;
            }
            _ => {}
        }
        Ok(())
    }

    /// Forgets who was online when the server granted privileges anew
    /// (a new connection): it tells again.
    fn new_epoch(&self, cx: &Context) {
        let Some(privileges) = cx.privileges() else {
            return;
        };
        let current = Arc::as_ptr(&privileges) as usize;
        let mut epoch = self.epoch.lock().unwrap_or_else(PoisonError::into_inner);
        if *epoch != current {
            *epoch = current;
            self.online().clear();
        }
    }

    /// A user's first resource came online: remember them (the `all`
    /// audience), and give them the MOTD if they have not had it.
    async fn logged_in(&self, cx: &Context, full: &FullJid) -> Result<(), HandlerError> {
        let store = self.store()?;
        let bare = full.to_bare();
        store.seen(bare.as_str()).map_err(HandlerError::internal)?;
        let Some(motd) = self.motd() else {
            return Ok(());
        };
        if !store
            .take_motd(bare.as_str(), &motd)
            .map_err(HandlerError::internal)?
        {
            return Ok(());
        }
        let mut settings = self.settings.clone();
        settings.rate = 0;
        if settings.message_type == MessageKind::Headline {
            // A MOTD is read at leisure: a normal message, as ejabberd sends it.
            settings.message_type = MessageKind::Normal;
        }
        let targets = vec![Target::Online(Jid::from(full.clone()))];
        let report = fanout::deliver(cx, &settings, targets, &motd.body).await;
        if report.failed > 0 {
            tracing::warn!(user = %bare, "announce: could not send the MOTD");
        }
        Ok(())
    }
}

async fn send_all(cx: &Context, stanzas: impl IntoIterator<Item = Presence>) {
    if let Err(e) = cx.send_many(stanzas).await {
        tracing::warn!(error = %e, "announce: could not send a presence");
    }
}

/// The announce service as a framework plugin.
pub struct AnnouncePlugin(pub Arc<Announce>);

impl AnnouncePlugin {
    /// The plugin for `announce`.
    pub fn new(announce: Announce) -> Self {
        Self(Arc::new(announce))
    }
}

/// What an admin's message asks for, by the resource it was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// An announcement.
    Announce(Audience),
    /// A new MOTD.
    SetMotd,
    /// No MOTD.
    DeleteMotd,
}

impl Request {
    /// The request a resource of the service's JID stands for:
    /// none or `online` (also Prosody's `announce/online`), `all`, `motd`
    /// (ejabberd's `motd/update` too), `motd/delete`.
    pub fn for_resource(resource: Option<&str>) -> Option<Self> {
        let resource = resource.unwrap_or("");
        let resource = resource.strip_prefix("announce/").unwrap_or(resource);
        match resource {
            "" | "online" | "announce" => Some(Self::Announce(Audience::Online)),
            "all" => Some(Self::Announce(Audience::All)),
            "motd" | "motd/update" => Some(Self::SetMotd),
            "motd/delete" => Some(Self::DeleteMotd),
            _ => None,
        }
    }
}

#[async_trait]
impl Plugin for AnnouncePlugin {
    fn name(&self) -> &'static str {
        "announce"
    }

    fn disco(&self) -> Disco {
        Disco::default().identity("component", "generic", "Announcements")
    }

    fn commands(&self) -> Vec<Arc<dyn AdhocCommand>> {
        crate::commands::all(&self.0)
    }

    async fn on_start(&self, _cx: &Context) -> Result<(), BoxError> {
        let store = Store::open(&self.0.settings.database).map_err(|e| {
            format!(
                "cannot open the database {}: {e}",
                self.0.settings.database.display()
            )
        })?;
        *self.0.motd.lock().unwrap_or_else(PoisonError::into_inner) = store.motd()?;
        let _ = self.0.store.set(store);
        Ok(())
    }

    async fn on_connected(&self, cx: &Context) -> Result<(), BoxError> {
        let this = Arc::clone(&self.0);
        let cx2 = cx.clone();
        cx.spawn(async move {
            let privileges = cx2.wait_privileges(this.settings.privileges_wait).await;
            if privileges.as_ref().is_some_and(|p| p.receives_presences()) {
                return;
            }
            tracing::warn!(
                jid = %cx2.jid(),
                "announce: the server grants no presence privilege (XEP-0356); announcements reach only users who subscribed to the service"
            );
            // Ask subscribers who is online.
            let Ok(store) = this.store() else { return };
            let me = Jid::from(cx2.jid().clone());
            let probes = store
                .subscribers()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|jid| Jid::new(&jid).ok())
                .flat_map(|to| {
                    [
                        Presence::probe().with_from(me.clone()).with_to(to.clone()),
                        Presence::available().with_from(me.clone()).with_to(to),
                    ]
                });
            send_all(&cx2, probes).await;
        });
        Ok(())
    }

    async fn handle_presence(&self, cx: &Context, p: &Presence) -> Flow {
        let (Some(from), Some(to)) = (&p.from, &p.to) else {
            return Flow::Continue;
        };
        if to.to_bare() != *cx.jid() {
            return Flow::Continue;
        }
        match self.0.presence(cx, p, from).await {
            Ok(()) => Flow::Handled,
            Err(e) => {
                tracing::warn!(error = ?e, "announce: a presence failed");
                Flow::Handled
            }
        }
    }

    async fn handle_message(&self, cx: &Context, m: &Message) -> Flow {
        let (Some(from), Some(to)) = (&m.from, &m.to) else {
            return Flow::Continue;
        };
        if to.to_bare() != *cx.jid() {
            return Flow::Continue;
        }
        if !matches!(m.type_, MessageType::Chat | MessageType::Normal) {
            // Errors (an offline resource), headlines: nothing to answer.
            return Flow::Handled;
        }
        let Some((_, body)) = m.get_best_body(vec![]) else {
            // Chat states and receipts.
            return Flow::Handled;
        };
        let Some(request) = Request::for_resource(to.resource().map(|r| r.as_str())) else {
            return Flow::Reject(HandlerError::item_not_found());
        };
        if !self.0.is_admin(from) {
            tracing::info!(%from, "announce: refused a non-admin");
            return Flow::Reject(HandlerError::forbidden(
                "only the service's admins may make announcements",
            ));
        }
        let body = body.trim().to_owned();
        match request {
            Request::Announce(audience) => {
                self.0.start(cx, audience, body, to.clone(), from.clone());
                Flow::Handled
            }
            Request::SetMotd | Request::DeleteMotd => {
                let result = if request == Request::SetMotd {
                    self.0
                        .set_motd(&body)
                        .map(|()| "Message of the day set.".to_owned())
                } else {
                    self.0.delete_motd().map(|had| {
                        if had {
                            "Message of the day deleted."
                        } else {
                            "There was no message of the day."
                        }
                        .to_owned()
                    })
                };
                match result {
                    Ok(text) => {
                        let mut reply =
                            Message::new_with_type(MessageType::Normal, Some(from.clone()));
                        reply.from = Some(to.clone());
                        reply.bodies.insert(Lang(String::new()), text);
                        let _ = cx.send(reply).await;
                        Flow::Handled
                    }
                    Err(e) => Flow::Reject(e),
                }
            }
        }
    }
}
