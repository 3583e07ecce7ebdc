//! IQs to a room or an occupant: each request's reply (result or error)
//! goes into the [`Outcome`] with whatever the request caused, in the
//! order Prosody sends them (an affiliation notice before the result, the
//! result before a configuration's 104 message).

use satellite::jid::Jid;
use satellite::{Element, IqRequest, IqType};

use super::{Env, Outcome, Room};
use crate::stanza::{
    Error, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC_ADMIN, NS_MUC_OWNER, NS_REGISTER, NS_STANZA,
    el_attrs,
};

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

    /// IQs to `room@service/nick`: a self-ping is answered here; anything
    /// else needs the occupant's client and is refused.
    fn iq_to_occupant(&self, req: &IqRequest) -> Result<Option<Element>, Error> {
        let from = req.from.to_string();
        let Some(sender) = self.occupant_by_session(&from) else {
            return Err(Error::new("cancel", "not-acceptable")
                .with_text("You are not currently connected to this chat"));
        };
        let nick = req.to.resource().map(|r| r.to_string()).unwrap_or_default();
        if self.occupant_by_nick(&nick).is_none() {
            return Err(Error::new("cancel", "item-not-found").with_text("Recipient not in room"));
        }
        if sender.nick == nick
            && req.type_ == IqType::Get
            && req.payload.is("ping", "urn:xmpp:ping")
        {
            return Ok(Some(iq_result(req, None)));
        }
        Err(Error::new("cancel", "service-unavailable"))
    }
}
