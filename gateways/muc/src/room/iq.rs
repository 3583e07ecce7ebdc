//! IQs to a room or an occupant: each request's reply (result or error)
//! goes into the [`Outcome`] with whatever the request caused, in the
//! order Prosody sends them (an affiliation notice before the result, the
//! result before a configuration's 104 message).

use satellite::jid::Jid;
use satellite::{Element, IqRequest, IqType};

use super::{Env, Outcome, Room};
use crate::stanza::{
    Error, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC_ADMIN, NS_MUC_OWNER, NS_REGISTER, NS_STANZA,
    el_attrs, set_attr,
};

/// The id of a relayed IQ: the asker's full JID and id, hex-encoded (so
/// the reply finds its way back without state in the room).
fn relay_id(asker: &str, id: &str) -> String {
    let raw = format!("{asker}\0{id}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn parse_relay_id(id: &str) -> Option<(String, String)> {
    if !id.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok())
        .collect();
    let raw = String::from_utf8(bytes?).ok()?;
    let (asker, orig) = raw.split_once('\0')?;
    Some((asker.to_owned(), orig.to_owned()))
}

/// The result IQ answering `req`, with an optional payload.
pub fn iq_result(req: &IqRequest, payload: Option<Element>) -> Element {
    let mut iq = el_attrs(
        "iq",
        NS_STANZA,
        &[
            ("from", Some(req.to.as_str())),
            ("to", Some(req.from.as_str())),
            ("id", Some(&req.id)),
            ("type", Some("result")),
        ],
    );
    if let Some(p) = payload {
        iq.append_child(p);
    }
    iq
}

/// The error IQ answering `req`.
pub fn iq_error(req: &IqRequest, error: &Error) -> Element {
    let mut iq = el_attrs(
        "iq",
        NS_STANZA,
        &[
            ("from", Some(req.to.as_str())),
            ("to", Some(req.from.as_str())),
            ("id", Some(&req.id)),
            ("type", Some("error")),
        ],
    );
    iq.append_child(error.to_element(None));
    iq
}

impl Room {
    /// Handles an IQ request to the room (muc#admin, muc#owner, register,
    /// disco) or to an occupant (XEP-0410 self-ping). The reply is among
    /// the stanzas of the outcome.
    pub fn handle_iq(&mut self, env: &Env, req: &IqRequest) -> Outcome {
        let mut out = Outcome::default();
        let result = if req.to.resource().is_some() {
            self.iq_to_occupant(req)
        } else {
            self.iq_to_room(env, req, &mut out)
        };
        match result {
            Ok(Some(reply)) => out.send(reply),
            Ok(None) => {}
            Err(e) => out.send(iq_error(req, &e)),
        }
        self.settle(&mut out);
        out
    }

    /// `Ok(Some(reply))` when the reply goes last; `Ok(None)` when it was
    /// already put in `out`.
    fn iq_to_room(
        &mut self,
        env: &Env,
        req: &IqRequest,
        out: &mut Outcome,
    ) -> Result<Option<Element>, Error> {
        let p = &req.payload;
        let ns = p.ns();
        let from: &Jid = &req.from;
        match (req.type_, ns.as_str(), p.name()) {
            (IqType::Get, NS_DISCO_INFO, "query") => Ok(Some(iq_result(
                req,
                Some(self.disco_info(env, from, p.attr("node"))),
            ))),
            (IqType::Get, NS_DISCO_ITEMS, "query") => {
                Ok(Some(iq_result(req, Some(self.disco_items()))))
            }
            (IqType::Get, NS_MUC_ADMIN, "query") => {
                Ok(Some(iq_result(req, Some(self.admin_get(env, from, p)?))))
            }
            (IqType::Set, NS_MUC_ADMIN, "query") => {
                self.admin_set(env, from, p, out)?;
                Ok(Some(iq_result(req, None)))
            }
            (IqType::Get, NS_MUC_OWNER, "query") => {
                Ok(Some(iq_result(req, Some(self.owner_get(env, from)?))))
            }
            (IqType::Set, NS_MUC_OWNER, "query") => {
                self.owner_set(env, from, p, iq_result(req, None), out)?;
                Ok(None)
            }
            (IqType::Get, NS_REGISTER, "query") => {
                Ok(Some(iq_result(req, Some(self.register_get(env, from)?))))
            }
            (IqType::Set, NS_REGISTER, "query") => {
                // The registration's presence update goes before the result.
                self.register_set(env, from, p, out)?;
                Ok(Some(iq_result(req, None)))
            }
            _ => Err(Error::new("cancel", "service-unavailable")),
        }
    }

    /// IQs to `room@service/nick`: a self-ping (XEP-0410) is answered
    /// here; anything else is relayed to the occupant's primary session,
    /// `from` the sender's nick, with an id that routes the reply back
    /// (see [`Room::handle_iq_response`]). vCard and PubSub requests go to
    /// the occupant's bare JID.
    fn iq_to_occupant(&self, req: &IqRequest) -> Result<Option<Element>, Error> {
        let from = req.from.to_string();
        let Some(sender) = self.occupant_by_session(&from) else {
            return Err(Error::new("cancel", "not-acceptable")
                .with_text("You are not currently connected to this chat"));
        };
        let nick = req.to.resource().map(|r| r.to_string()).unwrap_or_default();
        let Some(target) = self.occupant_by_nick(&nick) else {
            return Err(Error::new("cancel", "item-not-found").with_text("Recipient not in room"));
        };
        if sender.nick == nick
            && req.type_ == IqType::Get
            && req.payload.is("ping", "urn:xmpp:ping")
        {
            return Ok(Some(iq_result(req, None)));
        }
        let Some(primary) = target.sessions.first() else {
            return Err(Error::new("cancel", "item-not-found").with_text("Recipient not in room"));
        };
        let ns = req.payload.ns();
        let to = if matches!(
            ns.as_str(),
            "vcard-temp" | "http://jabber.org/protocol/pubsub" | "urn:ietf:params:xml:ns:vcard-4.0"
        ) {
            target.bare.as_str()
        } else {
            primary.jid.as_str()
        };
        let type_ = match req.type_ {
            IqType::Get => "get",
            IqType::Set => "set",
        };
        let mut iq = el_attrs(
            "iq",
            NS_STANZA,
            &[
                ("from", Some(&sender.jid)),
                ("to", Some(to)),
                ("id", Some(&relay_id(&from, &req.id))),
                ("type", Some(type_)),
            ],
        );
        iq.append_child(req.payload.clone());
        Ok(Some(iq))
    }

    /// A result or error IQ to `room@service/nick` answering a relayed
    /// request: back to the asker, `from` the answerer's nick, with the
    /// asker's id. Anything that does not match a relayed request is
    /// dropped.
    pub fn handle_iq_response(&mut self, iq: &Element) -> Outcome {
        let mut out = Outcome::default();
        let (Some(from), Some(id), Some(to)) = (iq.attr("from"), iq.attr("id"), iq.attr("to"))
        else {
            return out;
        };
        let Some((asker, orig_id)) = parse_relay_id(id) else {
            return out;
        };
        let Some(answerer) = self
            .occupant_by_session(from)
            .or_else(|| self.occupants.iter().find(|o| o.bare == from))
        else {
            return out;
        };
        let Some(asker_occ) = self.occupant_by_session(&asker) else {
            return out;
        };
        if to.split_once('/').map(|(_, n)| n) != Some(asker_occ.nick.as_str()) {
            return out;
        }
        let mut reply = iq.clone();
        set_attr(&mut reply, "from", answerer.jid.as_str());
        set_attr(&mut reply, "to", asker);
        set_attr(&mut reply, "id", orig_id);
        out.send(reply);
        out
    }
}
