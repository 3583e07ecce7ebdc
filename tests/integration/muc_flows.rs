//! satellite's MUC against a real Prosody with real clients (slixmpp),
//! flow by flow, asserting what each user sees: every join refusal, the
//! history variants, subject, private-message policies, moderation and the
//! affiliation lists, invitations, destroy, nick changes, multi-session
//! nicks, ghosts, temporary rooms vanishing, and persistence across a
//! graceful restart and across `kill -9` of the `satellite` binary.
//!
//! Run with `cargo test --test integration muc_flows`.

mod history;
mod joins;
mod moderation;
mod occupants;
mod persistence;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use satellite_harness::muc::{MucSetup, SATELLITE_MUC};
use xmpp_parsers::minidom::Element;

use crate::in_process::InProcess;
use crate::muc::start_muc;
use crate::support::{Client, Prosody};

/// How long a stanza that should come may take.
pub const T: Duration = Duration::from_secs(10);
/// How long to watch for a stanza that should not come.
pub const QUIET: Duration = Duration::from_millis(400);
/// The component secret of these tests.
pub const SECRET: &str = "muc-secret";

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// A Prosody with satellite's MUC (in this process) at `rooms.localhost`.
pub struct Service {
    /// The server.
    pub prosody: Prosody,
    /// The MUC component, while it runs.
    pub muc: Option<InProcess>,
    /// Holds the MUC database.
    pub dir: tempfile::TempDir,
    extra: String,
}

impl Service {
    /// Prosody with these users (each user's password is its name) and
    /// satellite's MUC with `extra` lines of `[component.settings]`.
    pub async fn start(users: &[&str], extra: &str) -> Service {
        let mut setup = MucSetup::satellite(SECRET);
        for user in users {
            setup = setup.user(user, user);
        }
        let prosody = setup.start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let muc = start_muc(&prosody, &Self::db(&dir), extra).await;
        Service {
            prosody,
            muc: Some(muc),
            dir,
            extra: extra.to_owned(),
        }
    }

    fn db(dir: &tempfile::TempDir) -> std::path::PathBuf {
        dir.path().join("muc.sqlite")
    }

    /// `user@localhost` logged in.
    pub async fn client(&self, user: &str) -> Client {
        Client::connect(self.prosody.c2s_port, &format!("{user}@localhost"), user).await
    }

    /// Stops the MUC gracefully and starts it again on the same database.
    pub async fn restart(&mut self) {
        if let Some(muc) = self.muc.take() {
            muc.stop().await;
        }
        self.muc = Some(start_muc(&self.prosody, &Self::db(&self.dir), &self.extra).await);
    }
}

/// `name@rooms.localhost`.
pub fn room(name: &str) -> String {
    format!("{name}@{SATELLITE_MUC}")
}

/// A fresh stanza id.
pub fn id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("m{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The status codes of a stanza's muc#user payload.
pub fn codes(e: &Element) -> Vec<u16> {
    e.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The `<item/>` of a stanza's muc#user payload.
pub fn item(e: &Element) -> Option<&Element> {
    e.get_child("x", NS_MUC_USER)?
        .get_child("item", NS_MUC_USER)
}

/// The defined condition of an error stanza.
pub fn condition(e: &Element) -> Option<String> {
    if e.attr("type") != Some("error") {
        return None;
    }
    e.children()
        .find(|c| c.name() == "error")?
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// A presence from `from`.
pub fn presence_from(e: &Element, from: &str) -> bool {
    e.name() == "presence" && e.attr("from") == Some(from)
}

/// A message from `from` with this body.
pub fn message_with(e: &Element, from: &str, body: &str) -> bool {
    e.name() == "message"
        && e.attr("from") == Some(from)
        && e.get_child("body", "jabber:client").map(Element::text) == Some(body.to_owned())
}

/// Sends a join presence to `room/nick` with `x` inside the muc payload
/// and returns the self-presence (status 110) or the error presence.
pub async fn join_with(c: &mut Client, room: &str, nick: &str, x: &str) -> Element {
    let to = format!("{room}/{nick}");
    c.send_raw(&format!(
        "<presence to='{to}'><x xmlns='{NS_MUC}'>{x}</x></presence>"
    ))
    .await;
    c.recv_matching(
        |e| {
            e.name() == "presence"
                && e.attr("from").is_some_and(|f| f.starts_with(room))
                && (codes(e).contains(&110)
                    || (e.attr("type") == Some("error") && e.attr("from") == Some(&to)))
        },
        T,
    )
    .await
}

/// Joins; panics unless the join succeeds. Returns the self-presence.
pub async fn join(c: &mut Client, room: &str, nick: &str) -> Element {
    let p = join_with(c, room, nick, "").await;
    assert!(
        codes(&p).contains(&110),
        "{} joining {room}/{nick}: {p:?}",
        c.jid
    );
    p
}

/// The error condition a join gets (panics if it succeeds).
pub async fn join_refused(c: &mut Client, room: &str, nick: &str, x: &str) -> String {
    let p = join_with(c, room, nick, x).await;
    condition(&p).unwrap_or_else(|| panic!("{room}/{nick} joined: {p:?}"))
}

/// Creates `room` as `nick` and submits its configuration form with these
/// fields (an instant room when there are none).
pub async fn create(c: &mut Client, room: &str, nick: &str, fields: &[(&str, &str)]) {
    let p = join(c, room, nick).await;
    assert!(codes(&p).contains(&201), "{room} was not new: {p:?}");
    let reply = configure(c, room, fields).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
}

/// Submits the room configuration form; returns the IQ reply.
pub async fn configure(c: &mut Client, room: &str, fields: &[(&str, &str)]) -> Element {
    let mut form = String::from(
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>",
    );
    for (var, value) in fields {
        form.push_str(&format!(
            "<field var='muc#roomconfig_{var}'><value>{value}</value></field>"
        ));
    }
    c.iq(&format!(
        "<iq type='set' id='{}' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'>{form}</x></query></iq>",
        id()
    ))
    .await
}

/// Sends a groupchat message.
pub async fn say(c: &mut Client, room: &str, body: &str) {
    c.send_raw(&format!(
        "<message type='groupchat' to='{room}' id='{}'><body>{body}</body></message>",
        id()
    ))
    .await;
}

/// Waits for `body` from `from` (a room occupant JID).
pub async fn hears(c: &mut Client, from: &str, body: &str) -> Element {
    c.recv_matching(|e| message_with(e, from, body), T).await
}

/// Sends a muc#admin set with one item; returns the IQ reply.
pub async fn admin(c: &mut Client, room: &str, item: &str) -> Element {
    c.iq(&format!(
        "<iq type='set' id='{}' to='{room}'><query xmlns='http://jabber.org/protocol/muc#admin'>{item}</query></iq>",
        id()
    ))
    .await
}

/// The JIDs of a muc#admin list (`affiliation='member'`…).
pub async fn admin_list(c: &mut Client, room: &str, affiliation: &str) -> Vec<String> {
    let reply = c
        .iq(&format!(
            "<iq type='get' id='{}' to='{room}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='{affiliation}'/></query></iq>",
            id()
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let mut jids: Vec<String> = reply
        .get_child("query", "http://jabber.org/protocol/muc#admin")
        .map(|q| {
            q.children()
                .filter_map(|i| i.attr("jid").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    jids.sort();
    jids
}

/// Leaves the room; waits for the own unavailable presence.
pub async fn leave(c: &mut Client, room: &str, nick: &str) {
    let from = format!("{room}/{nick}");
    c.send_raw(&format!("<presence type='unavailable' to='{from}'/>"))
        .await;
    c.recv_matching(
        |e| presence_from(e, &from) && e.attr("type") == Some("unavailable"),
        T,
    )
    .await;
}
