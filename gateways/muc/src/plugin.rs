//! The framework side: rooms in memory, each driven on its own lane (the
//! framework orders every stanza and every piece of work for
//! `room@service` on one lane, so a room has one writer), what a room
//! decides committed to the store before anything it says is sent, and
//! idle persistent rooms put to sleep and woken on their next stanza.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use satellite::jid::{BareJid, Jid};
use satellite::xmpp::disco::{DiscoInfoResult, DiscoItemsResult};
use satellite::xmpp::iq::Iq;
use satellite::xmpp::stanza_error::StanzaError;
use satellite::{
    BoxError, ComponentConfig, Context, Disco, DiscoItems, Element, Flow, HandlerError, IqRequest,
    IqResult, IqRoute, IqType, ItemsQuery, Plugin, Scope, async_trait,
};

use crate::room::{Env, Outcome, Room};
use crate::service::{self, Absent, Page, RoomItem};
use crate::settings::Settings;
use crate::stanza::{NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, el, el_attrs};
use crate::store::MucStore;
use crate::store::sqlite::SqliteStore;

mod archive;
mod outbox;

/// Rooms kept in the store are listed at most this many per disco#items.
const LIST_LIMIT: usize = 10_000;

/// The MUC service: one per component.
pub struct Muc {
    jid: BareJid,
    admins: Vec<BareJid>,
    settings: Settings,
    store: OnceLock<Arc<dyn MucStore>>,
    rooms: Mutex<HashMap<BareJid, Arc<Mutex<Live>>>>,
    /// What rooms said, waiting for its commit before it is sent.
    outboxes: outbox::Outboxes,
}

/// A room in memory.
struct Live {
    room: Room,
    /// When it last became empty (for hibernation), if it is.
    idle_since: Option<Instant>,
}

impl Muc {
    /// A MUC service for `config`'s component, with these settings; its
    /// store opens when the component starts.
    pub fn new(config: &ComponentConfig, settings: Settings) -> Self {
        Self {
            jid: config.jid.clone(),
            admins: config.admins.clone(),
            settings,
            store: OnceLock::new(),
            rooms: Mutex::new(HashMap::new()),
            outboxes: outbox::Outboxes::default(),
        }
    }

    /// A MUC service on a store of the caller's (tests, or another back
    /// end than SQLite).
    pub fn with_store(
        config: &ComponentConfig,
        settings: Settings,
        store: Arc<dyn MucStore>,
    ) -> Self {
        let this = Self::new(config, settings);
        let _ = this.store.set(store);
        this
    }

    /// How many rooms are in memory.
    pub fn live_rooms(&self) -> usize {
        self.rooms().len()
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<BareJid, Arc<Mutex<Live>>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn env(&self) -> Env<'_> {
        Env {
            service: &self.jid,
            admins: &self.admins,
            settings: &self.settings,
            now: SystemTime::now(),
        }
    }

    fn store(&self) -> Result<&Arc<dyn MucStore>, BoxError> {
        self.store
            .get()
            .ok_or_else(|| "the MUC store is not open".into())
    }

    /// The room a stanza is for: in memory, or woken from the store, or
    /// (for a join) created. `Err` carries the reply to send instead
    /// (`None`: nothing to send).
    async fn room_for(
        &self,
        env: &Env<'_>,
        jid: &BareJid,
        stanza: &Element,
    ) -> Result<Arc<Mutex<Live>>, Option<Element>> {
        let found = self.rooms().get(jid).cloned();
        if let Some(live) = found {
            return Ok(live);
        }
        match self.wake(env, jid).await {
            Ok(Some(live)) => return Ok(live),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(room = %jid, error = %e, "cannot load a room");
                return Err(crate::stanza::Error::new("wait", "internal-server-error")
                    .reply_to(stanza, Some(jid.as_str())));
            }
        }
        match service::absent_room(env, stanza, self.live_rooms()) {
            Absent::Create(room) => Ok(self.insert(jid, *room)),
            Absent::Reject(reply) => Err(Some(reply)),
            Absent::Ignore => Err(None),
        }
    }

    /// Loads a stored room (with its history from the archive).
    async fn wake(
        &self,
        env: &Env<'_>,
        jid: &BareJid,
    ) -> Result<Option<Arc<Mutex<Live>>>, BoxError> {
        let store = self.store()?;
        let name = jid.node().map(|n| n.to_string()).unwrap_or_default();
        let Some(stored) = store.load_room(&name).await? else {
            return Ok(None);
        };
        let mut room = Room::from_stored(env, jid, &stored)?;
        let max = room
            .config()
            .history_length
            .min(self.settings.max_history_messages) as usize;
        if max > 0 {
            let history = store.history(&name, max, None).await?;
            room.seed_history(env, &history);
        }
        Ok(Some(self.insert(jid, room)))
    }

    fn insert(&self, jid: &BareJid, room: Room) -> Arc<Mutex<Live>> {
        let live = Arc::new(Mutex::new(Live {
            room,
            idle_since: None,
        }));
        self.rooms().insert(jid.clone(), Arc::clone(&live));
        live
    }

    /// Runs one stanza through its room and carries out the outcome:
    /// archive and store writes committed, then the stanzas sent, then
    /// the room forgotten if it ended.
    async fn drive(
        &self,
        cx: &Context,
        to: &Jid,
        stanza: &Element,
        step: impl FnOnce(&mut Room, &Env) -> Outcome,
    ) -> Option<Outcome> {
        let env = self.env();
        let jid = match service::room_jid(&env, to) {
            Ok(jid) => jid,
            Err(e) => {
                if let Some(reply) = e.reply_to(stanza, Some(self.jid.as_str())) {
                    send(cx, vec![reply]).await;
                }
                return None;
            }
        };
        let live = match self.room_for(&env, &jid, stanza).await {
            Ok(live) => live,
            Err(reply) => {
                send(cx, reply.into_iter().collect()).await;
                return None;
            }
        };
        let outcome = {
            let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
            let outcome = step(&mut live.room, &env);
            live.idle_since = live.room.is_empty().then(Instant::now);
            outcome
        };
        if outcome.room_gone {
            self.rooms().remove(&jid);
        }
        Some(outcome)
    }

    /// Commits what an outcome stores, then sends what it says. A failed
    /// commit sends nothing of it (nothing is announced that is not
    /// stored) and answers the stanza with `internal-server-error`.
    /// Through the room's outbox: the order is kept, the lane does not
    /// wait for the disk.
    async fn carry_out(&self, cx: &Context, stanza: &Element, mut outcome: Outcome) {
        let room = stanza
            .attr("to")
            .and_then(|to| Jid::new(to).ok())
            .and_then(|to| service::room_jid(&self.env(), &to).ok());
        if let Some(room) = room {
            self.queue_outcome(cx, &room, stanza, outcome).await;
            return;
        }
        if let Err(e) = self.commit(&mut outcome).await {
            tracing::error!(error = %e, "cannot store a room change; nothing of it was sent");
            let by = stanza.attr("to").unwrap_or(self.jid.as_str());
            if let Some(reply) = crate::stanza::Error::new("wait", "internal-server-error")
                .reply_to(stanza, Some(by))
            {
                send(cx, vec![reply]).await;
            }
            return;
        }
        send(cx, outcome.stanzas).await;
    }

    async fn commit(&self, outcome: &mut Outcome) -> Result<(), BoxError> {
        if outcome.archive.is_empty() && outcome.writes.is_empty() {
            return Ok(());
        }
        let store = self.store()?;
        if !outcome.archive.is_empty() {
            store.append(std::mem::take(&mut outcome.archive)).await?;
        }
        if !outcome.writes.is_empty() {
            store.apply(std::mem::take(&mut outcome.writes)).await?;
        }
        Ok(())
    }

    /// Runs a synthetic IQ (disco) through a room, without side effects
    /// beyond what the engine does for that query; `None` when the room
    /// does not exist or answers with an error.
    async fn query_room(
        &self,
        cx: &Context,
        from: &Jid,
        to: &Jid,
        payload: Element,
    ) -> Option<Element> {
        let request = IqRequest {
            from: from.clone(),
            to: to.clone(),
            id: cx.next_id(),
            type_: IqType::Get,
            payload,
        };
        let env = self.env();
        let jid = service::room_jid(&env, to).ok()?;
        let found = self.rooms().get(&jid).cloned();
        let live = match found {
            Some(live) => live,
            None => self.wake(&env, &jid).await.ok().flatten()?,
        };
        let mut outcome = {
            let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
            live.room.handle_iq(&env, &request)
        };
        let reply = outcome.take_reply(&request)?;
        if reply.attr("type") != Some("result") {
            return None;
        }
        reply.children().next().cloned()
    }

    /// Puts to sleep the persistent rooms that have been empty for
    /// `hibernate_after`, each on its own lane (where nothing else can
    /// touch it meanwhile).
    async fn hibernate_idle(self: &Arc<Self>, cx: &Context) {
        let after = self.settings.hibernate_after;
        let idle: Vec<BareJid> = self
            .rooms()
            .iter()
            .filter(|(_, live)| {
                let live = live.lock().unwrap_or_else(PoisonError::into_inner);
                live.room.can_hibernate() && live.idle_since.is_some_and(|t| t.elapsed() >= after)
            })
            .map(|(jid, _)| jid.clone())
            .collect();
        for jid in idle {
            let this = Arc::clone(self);
            let room = jid.clone();
            let queued = cx
                .on_lane(&jid, async move {
                    let mut rooms = this.rooms();
                    let still_idle = rooms.get(&room).is_some_and(|live| {
                        let live = live.lock().unwrap_or_else(PoisonError::into_inner);
                        live.room.can_hibernate()
                            && live.idle_since.is_some_and(|t| t.elapsed() >= after)
                    });
                    if still_idle {
                        rooms.remove(&room);
                        tracing::debug!(%room, "room hibernated");
                    }
                })
                .await;
            if queued.is_err() {
                return;
            }
        }
    }
}

async fn send(cx: &Context, stanzas: Vec<Element>) {
    if let Err(e) = cx.send_many(stanzas).await {
        tracing::warn!(error = %e, "could not queue a room's stanzas");
    }
}

/// The request as a stanza again (for error replies built from it).
fn request_element(iq: &IqRequest) -> Element {
    let type_ = match iq.type_ {
        IqType::Get => "get",
        IqType::Set => "set",
    };
    let mut el = el_attrs(
        "iq",
        crate::stanza::NS_STANZA,
        &[
            ("from", Some(iq.from.as_str())),
            ("to", Some(iq.to.as_str())),
            ("id", Some(iq.id.as_str())),
            ("type", Some(type_)),
        ],
    );
    el.append_child(iq.payload.clone());
    el
}

/// An engine-built IQ reply as the framework's handler result.
fn into_iq_result(reply: Element) -> IqResult {
    if reply.attr("type") == Some("result") {
        return Ok(reply.children().next().cloned());
    }
    let error = reply
        .children()
        .find(|c| c.name() == "error")
        .cloned()
        .ok_or_else(|| HandlerError::internal("an error reply without <error/>"))?;
    let error = StanzaError::try_from(error).map_err(HandlerError::internal)?;
    Err(HandlerError::from(error))
}

/// The plugin: a shared handle on the service.
#[derive(Clone)]
pub struct MucPlugin(Arc<Muc>);

impl MucPlugin {
    /// Wraps a service.
    pub fn new(muc: Muc) -> Self {
        Self(Arc::new(muc))
    }

    /// The service, for tests and admin tools.
    pub fn service(&self) -> &Arc<Muc> {
        &self.0
    }
}

#[async_trait]
impl Plugin for MucPlugin {
    fn name(&self) -> &'static str {
        "muc"
    }

    fn disco(&self) -> Disco {
        let mut disco = Disco::default().identity("conference", "text", &self.0.settings.name);
        for feature in [NS_MUC, "http://jabber.org/protocol/muc#unique"] {
            disco = disco.feature(feature);
        }
        disco
    }

    fn commands(&self) -> Vec<Arc<dyn satellite::adhoc::AdhocCommand>> {
        vec![Arc::new(crate::commands::DestroyRooms(Arc::clone(&self.0)))]
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::fallback(IqType::Get).scope(Scope::Entities),
            IqRoute::fallback(IqType::Set).scope(Scope::Entities),
        ]
    }

    async fn on_start(&self, cx: &Context) -> Result<(), BoxError> {
        if self.0.store.get().is_none() {
            let path = self.0.settings.database.clone();
            let store = tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                SqliteStore::open(&path).map_err(|e| format!("{}: {e}", path.display()))
            })
            .await??;
            let _ = self.0.store.set(Arc::new(store));
        }
        self.0.spawn_retention(cx);
        let this = Arc::clone(&self.0);
        let token = cx.shutdown_token();
        let cx2 = cx.clone();
        let every = this
            .settings
            .hibernate_after
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        cx.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => this.hibernate_idle(&cx2).await,
                }
            }
        });
        Ok(())
    }

    fn raw_stanzas(&self) -> bool {
        true
    }

    async fn handle_stanza(&self, cx: &Context, stanza: &Element) -> Flow {
        // The room is the bare part of `to`, read as written: the nick
        // after the slash is the room's to judge (a nick that fails
        // resourceprep gets the room's own error).
        let Some(to) = stanza.attr("to") else {
            return Flow::Continue;
        };
        let bare = to.split_once('/').map_or(to, |(bare, _)| bare);
        if !bare.contains('@') {
            return Flow::Continue;
        }
        let to = match BareJid::new(bare) {
            Ok(jid) => Jid::from(jid),
            Err(_) => {
                let error = crate::stanza::Error::new("modify", "jid-malformed");
                if let Some(reply) = error.reply_to(stanza, Some(self.0.jid.as_str())) {
                    send(cx, vec![reply]).await;
                }
                return Flow::Handled;
            }
        };
        let step = |room: &mut Room, env: &Env| {
            if stanza.name() == "presence" {
                room.handle_presence(env, stanza)
            } else {
                room.handle_message(env, stanza)
            }
        };
        if let Some(outcome) = self.0.drive(cx, &to, stanza, step).await {
            self.0.carry_out(cx, stanza, outcome).await;
        }
        Flow::Handled
    }

    async fn handle_iq(&self, cx: &Context, iq: IqRequest) -> IqResult {
        let env = self.0.env();
        let stanza = request_element(&iq);
        let jid = match service::room_jid(&env, &iq.to) {
            Ok(jid) => jid,
            Err(_) => return into_iq_result(service::absent_room_iq(&env, &iq)),
        };
        // What the room said before is sent before this IQ's answer (and
        // archived before a MAM query reads).
        self.0.outboxes.flush(cx, &jid).await;
        let live = self.0.rooms().contains_key(&jid);
        let exists = live
            || match self.0.wake(&env, &jid).await {
                Ok(found) => found.is_some(),
                Err(e) => return Err(HandlerError::Internal(e)),
            };
        if !exists {
            return into_iq_result(service::absent_room_iq(&env, &iq));
        }
        if iq.to.resource().is_none()
            && let Some(request) =
                crate::mam::request(&iq, self.0.settings.max_archive_query_results)
        {
            return self.0.answer_mam(cx, &iq, &stanza, &jid, request).await;
        }
        let Some(mut outcome) = self
            .0
            .drive(cx, &iq.to, &stanza, |room, env| room.handle_iq(env, &iq))
            .await
        else {
            return Err(HandlerError::item_not_found());
        };
        if let Err(e) = self.0.commit(&mut outcome).await {
            return Err(HandlerError::Internal(e));
        }
        // The reply goes where the room put it among its stanzas (as
        // Prosody: a configuration's result before its 104 notice, a
        // destroy's after the presences); a request relayed to an
        // occupant is answered when the occupant's reply comes back
        // (handle_iq_response).
        send(cx, outcome.stanzas).await;
        Err(HandlerError::Deferred)
    }

    async fn handle_iq_response(&self, cx: &Context, iq: &Iq) -> Flow {
        let Some(to) = iq.to().filter(|t| t.node().is_some()).cloned() else {
            return Flow::Continue;
        };
        let stanza = Element::from(iq.clone());
        let env = self.0.env();
        let Ok(jid) = service::room_jid(&env, &to) else {
            return Flow::Handled;
        };
        let Some(live) = self.0.rooms().get(&jid).cloned() else {
            return Flow::Handled;
        };
        let outcome = {
            let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
            live.room.handle_iq_response(&stanza)
        };
        self.0.carry_out(cx, &stanza, outcome).await;
        Flow::Handled
    }

    async fn disco_info(
        &self,
        cx: &Context,
        from: &Jid,
        to: &Jid,
        node: Option<&str>,
    ) -> Option<DiscoInfoResult> {
        if to.node().is_none() || to.resource().is_some() {
            return None;
        }
        let query = el_attrs("query", NS_DISCO_INFO, &[("node", node)]);
        let payload = self.0.query_room(cx, from, to, query).await?;
        DiscoInfoResult::try_from(payload).ok()
    }

    async fn disco_items(&self, cx: &Context, query: &ItemsQuery) -> DiscoItems {
        if query.to.resource().is_some() || query.node.is_some() {
            return DiscoItems::default();
        }
        let payload = if query.to.node().is_some() {
            self.0
                .query_room(cx, &query.from, &query.to, el("query", NS_DISCO_ITEMS))
                .await
        } else {
            Some(self.0.public_rooms(query).await)
        };
        let Some(result) = payload.and_then(|p| DiscoItemsResult::try_from(p).ok()) else {
            return DiscoItems::default();
        };
        DiscoItems {
            items: result.items,
            rsm: result.rsm,
        }
    }
}

impl Muc {
    /// Destroys a room on its lane (as an owner would, without a reason);
    /// `false` if there is no such room.
    pub async fn destroy_room(
        self: &Arc<Self>,
        cx: &Context,
        jid: &BareJid,
    ) -> Result<bool, HandlerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = Arc::clone(self);
        let room = jid.clone();
        let lane_cx = cx.clone();
        cx.on_lane(jid, async move {
            this.outboxes.flush(&lane_cx, &room).await;
            let env = this.env();
            let found = this.rooms().get(&room).cloned();
            let live = match found {
                Some(live) => Some(live),
                None => this.wake(&env, &room).await.unwrap_or_else(|e| {
                    tracing::error!(%room, error = %e, "cannot load a room");
                    None
                }),
            };
            let Some(live) = live else {
                let _ = tx.send(Ok(false));
                return;
            };
            let mut outcome = Outcome::default();
            {
                let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
                live.room.destroy(&env, None, None, None, &mut outcome);
            }
            this.rooms().remove(&room);
            let name = room.node().map(|n| n.to_string()).unwrap_or_default();
            let committed = match this.commit(&mut outcome).await {
                Ok(()) => match this.store() {
                    // A temporary room's archive goes too.
                    Ok(store) => store.remove_archive(&name).await.map_err(BoxError::from),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = committed {
                let _ = tx.send(Err(HandlerError::Internal(e)));
                return;
            }
            send(&lane_cx, outcome.stanzas).await;
            let _ = tx.send(Ok(true));
        })
        .await
        .map_err(|e| HandlerError::resource_constraint(e.to_string()))?;
        rx.await
            .map_err(|_| HandlerError::internal("the room's lane stopped"))?
    }

    /// The public room list (live rooms and stored ones), one page.
    async fn public_rooms(&self, query: &ItemsQuery) -> Element {
        let env = self.env();
        let mut items: HashMap<String, RoomItem> = HashMap::new();
        if let Ok(store) = self.store() {
            match store.list_rooms(true, None, LIST_LIMIT).await {
                Ok(records) => {
                    for record in &records {
                        if let Some(item) = RoomItem::of_record(record) {
                            items.insert(record.name.clone(), item);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list stored rooms"),
            }
        }
        let live: Vec<Arc<Mutex<Live>>> = self.rooms().values().cloned().collect();
        for live in live {
            let live = live.lock().unwrap_or_else(PoisonError::into_inner);
            let name = live.room.name().to_owned();
            match RoomItem::of(&live.room) {
                Some(item) => {
                    items.insert(name, item);
                }
                // Live state wins: a room made hidden is not listed.
                None => {
                    items.remove(&name);
                }
            }
        }
        let mut request = el("query", NS_DISCO_ITEMS);
        if let Some(rsm) = &query.rsm {
            request.append_child(Element::from(rsm.clone()));
        }
        let page = Page::from_query(&request);
        service::disco_items(&env, &page, items.into_values().collect())
    }
}
