//! The service itself (`conference.example.org`): who may create rooms,
//! valid room names, what happens to a stanza for a room that does not
//! exist, the service's disco#info, and the public room list for
//! disco#items with XEP-0059 paging.

use satellite::Element;
use satellite::jid::{BareJid, Jid};

use crate::room::{Env, Room};
use crate::settings::CreatePolicy;
use crate::stanza::{Error, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_RSM, el, el_attrs, text_el};

/// What to do with a stanza for a room that is neither in memory nor
/// stored.
#[derive(Debug)]
pub enum Absent {
    /// A join that creates the room: keep this room and pass it the same
    /// presence through [`Room::handle_presence`].
    Create(Box<Room>),
    /// Refused: send this error.
    Reject(Element),
    /// Nothing to do (an error stanza).
    Ignore,
}

/// The room JID a stanza is addressed to (`room@service`), checked:
/// the localpart must pass strict nodeprep.
pub fn room_jid(env: &Env, to: &Jid) -> Result<BareJid, Error> {
    let node = to
        .node()
        .ok_or_else(|| Error::new("modify", "jid-malformed"))?
        .to_string();
    let prepped = stringprep::nodeprep(&node).map_err(|_| Error::new("modify", "jid-malformed"))?;
    if prepped != node {
        return Err(Error::new("modify", "jid-malformed"));
    }
    BareJid::new(&format!("{node}@{}", env.service))
        .map_err(|_| Error::new("modify", "jid-malformed"))
}

/// Whether a bare JID may create rooms.
pub fn may_create(env: &Env, bare: &str) -> Result<(), Error> {
    if env.is_admin(bare) {
        return Ok(());
    }
    let allowed = match env.settings.create {
        CreatePolicy::Anyone => true,
        CreatePolicy::Admins => false,
        CreatePolicy::Local => {
            let domain = bare.rsplit('@').next().unwrap_or(bare);
            domain == satellite::acl::parent_domain(env.service.as_str())
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::new("cancel", "not-allowed").with_text("Room creation is restricted"))
    }
}

/// A stanza to a room that does not exist: a join (available presence
/// with a muc payload) creates it when allowed; anything else is
/// `item-not-found`. `live_rooms` is how many rooms are in memory, for
/// `max_rooms`.
pub fn absent_room(env: &Env, stanza: &Element, live_rooms: usize) -> Absent {
    if stanza.attr("type") == Some("error") {
        return Absent::Ignore;
    }
    let service = env.service.to_string();
    let reject = |e: Error| {
        e.reply_to(stanza, Some(&service))
            .map_or(Absent::Ignore, Absent::Reject)
    };
    let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
        return reject(Error::new("modify", "jid-malformed"));
    };
    let jid = match room_jid(env, &to) {
        Ok(j) => j,
        Err(e) => return reject(e),
    };
    let is_join = stanza.name() == "presence"
        && stanza.attr("type").is_none()
        && stanza.has_child("x", NS_MUC);
    if !is_join {
        return reject(Error::new("cancel", "item-not-found"));
    }
    let Some(from) = stanza.attr("from").and_then(|f| Jid::new(f).ok()) else {
        return Absent::Ignore;
    };
    if let Err(e) = may_create(env, from.to_bare().as_str()) {
        return reject(e);
    }
    if env.settings.max_rooms.is_some_and(|max| live_rooms >= max) {
        return reject(Error::new("wait", "resource-constraint"));
    }
    Absent::Create(Box::new(Room::new(env, &jid)))
}

/// The answer to an IQ for a room that is neither in memory nor stored:
/// `item-not-found` from the service (`jid-malformed` for a bad room
/// name).
pub fn absent_room_iq(env: &Env, req: &satellite::IqRequest) -> Element {
    let error = match room_jid(env, &req.to) {
        Ok(_) => Error::new("cancel", "item-not-found"),
        Err(e) => e,
    };
    crate::room::iq_error(req, &error)
}

/// The service's disco#info query (identity conference/text, the muc
/// feature).
pub fn disco_info(env: &Env) -> Element {
    let mut q = el("query", NS_DISCO_INFO);
    q.append_child(el_attrs(
        "identity",
        NS_DISCO_INFO,
        &[
            ("category", Some("conference")),
            ("type", Some("text")),
            ("name", Some(&env.settings.name)),
        ],
    ));
    for f in [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC] {
        q.append_child(el_attrs("feature", NS_DISCO_INFO, &[("var", Some(f))]));
    }
    q
}

/// One room in the public list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomItem {
    /// The room's localpart (list order).
    pub name: String,
    /// Its display name, if configured.
    pub title: Option<String>,
}

impl RoomItem {
    /// The list entry of a live room, if it is public.
    pub fn of(room: &Room) -> Option<Self> {
        room.config().public.then(|| Self {
            name: room.name().to_owned(),
            title: room.config().name.clone(),
        })
    }

    /// The list entry of a stored room, if it is public.
    pub fn of_record(record: &crate::store::RoomRecord) -> Option<Self> {
        if !record.public {
            return None;
        }
        let title = serde_json::from_str::<crate::room::RoomConfig>(&record.config)
            .ok()
            .and_then(|c| c.name);
        Some(Self {
            name: record.name.clone(),
            title,
        })
    }
}

/// What a disco#items request asks of the list (XEP-0059).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Items at most (`None`: all).
    pub max: Option<usize>,
    /// After this room name.
    pub after: Option<String>,
    /// Before this room name (`Some("")`: the last page).
    pub before: Option<String>,
}

impl Page {
    /// Reads `<set xmlns='http://jabber.org/protocol/rsm'/>` from a
    /// disco#items query.
    pub fn from_query(query: &Element) -> Self {
        let Some(set) = query.get_child("set", NS_RSM) else {
            return Self::default();
        };
        let text = |name: &str| set.get_child(name, NS_RSM).map(Element::text);
        Self {
            max: text("max").and_then(|m| m.trim().parse().ok()),
            after: text("after"),
            before: text("before"),
        }
    }
}

/// The service's disco#items answer: public rooms in name order, one page
/// of them with an RSM `<set/>` when the request asked for paging. `rooms`
/// is every public room (live and stored) in any order.
pub fn disco_items(env: &Env, page: &Page, mut rooms: Vec<RoomItem>) -> Element {
    rooms.sort();
    rooms.dedup_by(|a, b| a.name == b.name);
    let count = rooms.len();
    let start = match (&page.after, &page.before) {
        (Some(after), _) => rooms.partition_point(|r| r.name.as_str() <= after.as_str()),
        (None, Some(before)) if !before.is_empty() => {
            let end = rooms.partition_point(|r| r.name.as_str() < before.as_str());
            end.saturating_sub(page.max.unwrap_or(end))
        }
        (None, Some(_)) => count.saturating_sub(page.max.unwrap_or(count)),
        (None, None) => 0,
    };
    let end = match (&page.after, &page.before) {
        (None, Some(before)) if !before.is_empty() => {
            rooms.partition_point(|r| r.name.as_str() < before.as_str())
        }
        _ => start.saturating_add(page.max.unwrap_or(count)).min(count),
    };
    let mut q = el("query", NS_DISCO_ITEMS);
    let slice = &rooms[start.min(end)..end];
    for r in slice {
        let jid = format!("{}@{}", r.name, env.service);
        q.append_child(el_attrs(
            "item",
            NS_DISCO_ITEMS,
            &[
                ("jid", Some(&jid)),
                ("name", Some(r.title.as_deref().unwrap_or(&r.name))),
            ],
        ));
    }
    if page.max.is_some() || page.after.is_some() || page.before.is_some() {
        let mut set = el("set", NS_RSM);
        if let (Some(first), Some(last)) = (slice.first(), slice.last()) {
            let mut f = text_el("first", NS_RSM, &first.name);
            crate::stanza::set_attr(&mut f, "index", start.to_string());
            set.append_child(f);
            set.append_child(text_el("last", NS_RSM, &last.name));
        }
        set.append_child(text_el("count", NS_RSM, &count.to_string()));
        q.append_child(set);
    }
    q
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::settings::Settings;

    fn with_env<T>(settings: Settings, f: impl FnOnce(&Env) -> T) -> T {
        let service = BareJid::new("conference.example.org").expect("jid");
        let admins = [BareJid::new("admin@example.org").expect("jid")];
        let env = Env {
            service: &service,
            admins: &admins,
            settings: &settings,
            now: SystemTime::UNIX_EPOCH,
        };
        f(&env)
    }

    fn presence(to: &str, muc: bool) -> Element {
        let x = if muc {
            "<x xmlns='http://jabber.org/protocol/muc'/>"
        } else {
            ""
        };
        format!("<presence xmlns='jabber:component:accept' from='u@example.org/r' to='{to}'>{x}</presence>")
            .parse()
            .expect("xml")
    }

    #[test]
    fn creation_policy() {
        with_env(Settings::default(), |env| {
            assert!(matches!(
                absent_room(env, &presence("room@conference.example.org/n", true), 0),
                Absent::Create(_)
            ));
            let Absent::Reject(e) =
                absent_room(env, &presence("room@conference.example.org/n", false), 0)
            else {
                panic!("join without muc payload creates nothing");
            };
            assert!(String::from(&e).contains("item-not-found"));
        });
        let admins_only = Settings {
            create: CreatePolicy::Admins,
            ..Settings::default()
        };
        with_env(admins_only, |env| {
            let Absent::Reject(e) =
                absent_room(env, &presence("room@conference.example.org/n", true), 0)
            else {
                panic!("refused");
            };
            assert!(String::from(&e).contains("not-allowed"));
            assert!(may_create(env, "admin@example.org").is_ok());
        });
        let local = Settings {
            create: CreatePolicy::Local,
            ..Settings::default()
        };
        with_env(local, |env| {
            assert!(may_create(env, "u@example.org").is_ok());
            assert!(may_create(env, "u@elsewhere.org").is_err());
        });
        let capped = Settings {
            max_rooms: Some(1),
            ..Settings::default()
        };
        with_env(capped, |env| {
            assert!(matches!(
                absent_room(env, &presence("room@conference.example.org/n", true), 1),
                Absent::Reject(_)
            ));
        });
    }

    #[test]
    fn disco_info_of_the_service() {
        with_env(Settings::default(), |env| {
            let q = disco_info(env);
            let s = String::from(&q);
            assert!(s.contains("category='conference'"), "{s}");
            assert!(s.contains(NS_MUC));
        });
    }

    #[test]
    fn public_rooms_paged() {
        with_env(Settings::default(), |env| {
            let rooms: Vec<RoomItem> = ["d", "a", "c", "b", "e"]
                .iter()
                .map(|n| RoomItem {
                    name: (*n).to_owned(),
                    title: None,
                })
                .collect();
            let all = disco_items(env, &Page::default(), rooms.clone());
            assert_eq!(all.children().count(), 5);
            assert!(all.get_child("set", NS_RSM).is_none());
            let first = disco_items(
                env,
                &Page {
                    max: Some(2),
                    ..Page::default()
                },
                rooms.clone(),
            );
            let jids: Vec<_> = first.children().filter_map(|c| c.attr("jid")).collect();
            assert_eq!(
                jids,
                ["a@conference.example.org", "b@conference.example.org"]
            );
            let set = first.get_child("set", NS_RSM).expect("set");
            assert_eq!(
                set.get_child("count", NS_RSM).map(Element::text).as_deref(),
                Some("5")
            );
            assert_eq!(
                set.get_child("last", NS_RSM).map(Element::text).as_deref(),
                Some("b")
            );
            let next = disco_items(
                env,
                &Page {
                    max: Some(2),
                    after: Some("b".into()),
                    before: None,
                },
                rooms.clone(),
            );
            let jids: Vec<_> = next.children().filter_map(|c| c.attr("jid")).collect();
            assert_eq!(
                jids,
                ["c@conference.example.org", "d@conference.example.org"]
            );
            let last = disco_items(
                env,
                &Page {
                    max: Some(2),
                    after: None,
                    before: Some(String::new()),
                },
                rooms,
            );
            let jids: Vec<_> = last.children().filter_map(|c| c.attr("jid")).collect();
            assert_eq!(
                jids,
                ["d@conference.example.org", "e@conference.example.org"]
            );
        });
    }

    #[test]
    fn room_names_must_be_nodeprepped() {
        with_env(Settings::default(), |env| {
            let ok = Jid::new("garden@conference.example.org").expect("jid");
            assert_eq!(
                room_jid(env, &ok).expect("valid").as_str(),
                "garden@conference.example.org"
            );
            let none = Jid::new("conference.example.org").expect("jid");
            assert!(room_jid(env, &none).is_err());
        });
    }
}
