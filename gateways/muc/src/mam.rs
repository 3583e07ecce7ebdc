//! Message Archive Management for rooms (XEP-0313, `urn:xmpp:mam:2` and
//! `#extended`): the query IQs to `room@service` read as
//! [`ArchiveQuery`]s, who may query a room, and the stanzas of an answer
//! (one `<result/>` message per archived message, then the `<fin/>`).
//!
//! Pure functions: the plugin checks [`access`] on the room, runs the
//! query on the store, and sends what [`result_message`] and [`fin`]
//! build, all on the room's lane.

use satellite::jid::Jid;
use satellite::{Element, IqRequest, IqType};

use crate::affiliation::Affiliation;
use crate::permissions::Whois;
use crate::role::Role;
use crate::room::config::SubmittedForm;
use crate::room::{Env, Room};
use crate::stanza::{
    Error, NS_DATA, NS_DELAY, NS_MUC_USER, NS_RSM, NS_STANZA, el, el_attrs, remove_attr, text_el,
};
use crate::store::archive::{ArchiveBounds, ArchivePage, ArchiveQuery, ArchivedMessage, Paging};

/// XEP-0313 Message Archive Management.
pub const NS_MAM: &str = "urn:xmpp:mam:2";
/// XEP-0313's `before-id`, `after-id`, `ids` and `flip-page`.
pub const NS_MAM_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0297 Stanza Forwarding.
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// The namespace of stanzas as clients see them.
const NS_CLIENT: &str = "jabber:client";

/// Results per page when the query names no `<max/>`.
pub const DEFAULT_MAX: usize = 20;

/// A MAM request to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `<iq type='get'><query/>`: the fields of the query form.
    Form,
    /// `<iq type='get'><metadata/>`: the first and last archived message.
    Metadata,
    /// `<iq type='set'><query/>`: one page of the archive.
    Query(Box<Query>),
}

/// A parsed archive query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The client's `queryid`, echoed in every result.
    pub queryid: Option<String>,
    /// What to read.
    pub archive: ArchiveQuery,
}

/// Whether `iq` is a MAM request (`None`: some other IQ, for the engine).
/// A malformed query is an `Err` with the error to answer.
pub fn request(iq: &IqRequest, max_max: usize) -> Option<Result<Request, Error>> {
    let p = &iq.payload;
    if p.ns() != NS_MAM {
        return None;
    }
    Some(match (iq.type_, p.name()) {
        (IqType::Get, "query") => Ok(Request::Form),
        (IqType::Get, "metadata") => Ok(Request::Metadata),
        (IqType::Set, "query") => parse_query(p, max_max).map(|q| Request::Query(Box::new(q))),
        _ => Err(Error::new("cancel", "feature-not-implemented")),
    })
}

/// Reads a `<query xmlns='urn:xmpp:mam:2'/>` with its form and RSM set;
/// `max` is capped at `max_max`.
pub fn parse_query(query: &Element, max_max: usize) -> Result<Query, Error> {
    let bad = |text: String| Error::new("modify", "bad-request").with_text(text);
    let mut archive = ArchiveQuery::new(DEFAULT_MAX.min(max_max));
    if let Some(x) = query.get_child("x", NS_DATA) {
        let form = SubmittedForm::parse(x);
        if let Some(t) = form.form_type()
            && t != NS_MAM
        {
            return Err(bad(format!("Unexpected FORM_TYPE, expected '{NS_MAM}'")));
        }
        let vars = x
            .children()
            .filter(|f| f.is("field", NS_DATA))
            .filter_map(|f| f.attr("var"));
        for var in vars {
            if !matches!(
                var,
                "FORM_TYPE" | "start" | "end" | "with" | "before-id" | "after-id" | "ids"
            ) {
                return Err(Error::new("modify", "feature-not-implemented")
                    .with_text(format!("Unknown field {var:?}")));
            }
        }
        let time = |var: &str| -> Result<Option<i64>, Error> {
            match form.value(var).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => parse_time(v)
                    .map(Some)
                    .ok_or_else(|| bad(format!("Invalid {var}: {v:?}"))),
            }
        };
        archive.start = time("start")?;
        archive.end = time("end")?;
        let text = |var: &str| form.value(var).filter(|v| !v.is_empty()).map(str::to_owned);
        archive.with = text("with");
        archive.before_id = text("before-id");
        archive.after_id = text("after-id");
        archive.ids = form
            .values("ids")
            .map(|v| v.iter().filter(|i| !i.is_empty()).cloned().collect())
            .unwrap_or_default();
    }
    if let Some(set) = query.get_child("set", NS_RSM) {
        if let Some(max) = set.get_child("max", NS_RSM) {
            let n: usize = max
                .text()
                .trim()
                .parse()
                .map_err(|_| bad("Invalid <max/>".to_owned()))?;
            archive.max = n.min(max_max);
        }
        let cursor = |name: &str| set.get_child(name, NS_RSM).map(|c| c.text());
        archive.paging = match (cursor("before"), cursor("after")) {
            (Some(b), _) if b.is_empty() => Paging::Last,
            (Some(b), _) => Paging::Before(b),
            (None, Some(a)) if !a.is_empty() => Paging::After(a),
            _ => Paging::First,
        };
    }
    archive.flip_page = query.get_child("flip-page", NS_MAM).is_some();
    Ok(Query {
        queryid: query.attr("queryid").map(str::to_owned),
        archive,
    })
}

/// An XEP-0082 dateTime as unix microseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_micros())
}

/// An XEP-0082 dateTime (microseconds, UTC) of unix microseconds.
pub fn format_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What a querier may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Real JIDs of senders are shown (and may be searched with `with`).
    pub sees_jids: bool,
}

/// Whether `from` may read the room's archive, as Prosody's
/// mod_muc_mam: nobody banned; in a members-only room its members (and
/// its occupants); in a hidden room its occupants and affiliated users;
/// in a public open room anyone. Refusals are `forbidden`.
pub fn access(room: &Room, env: &Env, from: &Jid) -> Result<Access, Error> {
    let bare = from.to_bare().to_string();
    let affiliation = room.affiliation(env, &bare);
    let occupant = room
        .occupant_by_session(from.as_str())
        .or_else(|| room.occupants().iter().find(|o| o.bare == bare));
    let config = room.config();
    let forbidden = || Error::new("auth", "forbidden");
    if affiliation == Affiliation::Outcast {
        return Err(forbidden());
    }
    let insider = occupant.is_some() || affiliation >= Affiliation::Member;
    if (config.members_only || !config.public) && !insider {
        return Err(forbidden());
    }
    let sees_jids = config.whois == Whois::Anyone
        || affiliation >= Affiliation::Admin
        || occupant.is_some_and(|o| o.role == Role::Moderator);
    Ok(Access { sees_jids })
}

/// Checks a query against what the querier may see: searching by real JID
/// needs the right to see real JIDs (occupant-ids are opaque, without `@`
/// or `.`).
pub fn check_query(query: &Query, access: Access) -> Result<(), Error> {
    match &query.archive.with {
        Some(with) if !access.sees_jids && (with.contains('@') || with.contains('.')) => {
            Err(Error::new("auth", "forbidden").with_text("Real JIDs are not visible in this room"))
        }
        _ => Ok(()),
    }
}

/// The query form (`<iq type='get'><query/>`'s answer).
pub fn form() -> Element {
    let mut x = el_attrs("x", NS_DATA, &[("type", Some("form"))]);
    let field = |var: &str, type_: &str| {
        el_attrs(
            "field",
            NS_DATA,
            &[("var", Some(var)), ("type", Some(type_))],
        )
    };
    let mut ft = field("FORM_TYPE", "hidden");
    ft.append_child(text_el("value", NS_DATA, NS_MAM));
    x.append_child(ft);
    x.append_child(field("with", "jid-single"));
    x.append_child(field("start", "text-single"));
    x.append_child(field("end", "text-single"));
    x.append_child(field("before-id", "text-single"));
    x.append_child(field("after-id", "text-single"));
    x.append_child(field("ids", "list-multi"));
    let mut q = el("query", NS_MAM);
    q.append_child(x);
    q
}

/// The metadata answer: the first and the last archived message.
pub fn metadata(bounds: Option<&ArchiveBounds>) -> Element {
    let mut m = el("metadata", NS_MAM);
    if let Some(b) = bounds {
        for (name, (id, at)) in [("start", &b.first), ("end", &b.last)] {
            m.append_child(el_attrs(
                name,
                NS_MAM,
                &[("id", Some(id)), ("timestamp", Some(&format_time(*at)))],
            ));
        }
    }
    m
}

/// One result: `<message from=room to=querier><result queryid id>
/// <forwarded><delay/>the message</forwarded></result></message>`. The
/// sender's real JID is added (`muc#user` item) only for a querier who
/// sees real JIDs; any other `muc#user` payload is left out.
pub fn result_message(
    room_jid: &str,
    to: &str,
    queryid: Option<&str>,
    message: &ArchivedMessage,
    access: Access,
) -> Option<Element> {
    let archived: Element = match message.xml.parse() {
        Ok(el) => el,
        Err(e) => {
            tracing::warn!(room = room_jid, id = %message.id, error = %e, "unreadable archived message");
            return None;
        }
    };
    let mut inner = to_client(&archived, &archived.ns());
    remove_attr(&mut inner, "to");
    let mut kept = el(inner.name(), NS_CLIENT);
    for ((ns, name), value) in inner.attrs().iter() {
        kept.set_attr(ns.clone(), name.clone(), value.clone());
    }
    for child in inner.children() {
        if child.is("x", NS_MUC_USER) {
            continue;
        }
        kept.append_child(child.clone());
    }
    if access.sees_jids
        && let Some(jid) = &message.real_jid
    {
        let mut x = el("x", NS_MUC_USER);
        x.append_child(el_attrs("item", NS_MUC_USER, &[("jid", Some(jid))]));
        kept.append_child(x);
    }
    let mut forwarded = el("forwarded", NS_FORWARD);
    forwarded.append_child(el_attrs(
        "delay",
        NS_DELAY,
        &[
            ("stamp", Some(&format_time(message.timestamp))),
            ("from", Some(room_jid)),
        ],
    ));
    forwarded.append_child(kept);
    let mut result = el_attrs(
        "result",
        NS_MAM,
        &[("queryid", queryid), ("id", Some(&message.id))],
    );
    result.append_child(forwarded);
    let mut msg = el_attrs(
        "message",
        NS_STANZA,
        &[("from", Some(room_jid)), ("to", Some(to))],
    );
    msg.append_child(result);
    Some(msg)
}

/// A stored stanza with the stream namespace `from` (the component's)
/// turned into `jabber:client`, recursively.
fn to_client(e: &Element, from: &str) -> Element {
    let ns = if e.ns() == from {
        NS_CLIENT.to_owned()
    } else {
        e.ns()
    };
    let mut out = el(e.name(), &ns);
    for ((ans, name), value) in e.attrs().iter() {
        out.set_attr(ans.clone(), name.clone(), value.clone());
    }
    for node in e.nodes() {
        match node.as_element() {
            Some(c) => {
                out.append_child(to_client(c, from));
            }
            None => out.append_node(node.clone()),
        }
    }
    out
}

/// The `<fin/>` closing a query, with its RSM set.
pub fn fin(page: &ArchivePage, paging: &Paging) -> Element {
    let mut fin = el_attrs(
        "fin",
        NS_MAM,
        &[("complete", page.complete.then_some("true"))],
    );
    let mut set = el("set", NS_RSM);
    if let (Some(first), Some(last)) = (&page.first, &page.last) {
        let index = match paging {
            Paging::First => Some(0),
            Paging::Last => Some(page.count.saturating_sub(page.messages.len())),
            _ => None,
        }
        .map(|i| i.to_string());
        let mut f = el_attrs("first", NS_RSM, &[("index", index.as_deref())]);
        f.append_text(first.clone());
        set.append_child(f);
        set.append_child(text_el("last", NS_RSM, last));
    }
    set.append_child(text_el("count", NS_RSM, &page.count.to_string()));
    fin.append_child(set);
    fin
}

#[cfg(test)]
#[path = "mam_tests.rs"]
mod tests;
