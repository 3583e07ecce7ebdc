//! Nick registration (XEP-0045 §7.10, jabber:iq:register): an affiliated
//! user reserves a nick; registering makes a member, as Prosody's mod_muc.

use satellite::Element;
use satellite::jid::Jid;

use super::config::{SubmittedForm, field};
use super::{Env, Outcome, Room};
use crate::affiliation::Affiliation;
use crate::stanza::{Error, NS_DATA, NS_REGISTER, el, el_attrs, text_el};

/// The registration FORM_TYPE.
const REGISTER_FORM: &str = "http://jabber.org/protocol/muc#register";

impl Room {
    fn check_registrant(&self, env: &Env, bare: &str) -> Result<Affiliation, Error> {
        match self.affiliation(env, bare) {
            Affiliation::Outcast => Err(Error::new("auth", "forbidden")),
            Affiliation::None if !env.settings.allow_unaffiliated_register => {
                Err(Error::new("auth", "registration-required"))
            }
            a => Ok(a),
        }
    }

    /// `get`: the registered nick, or the form to register one.
    pub(super) fn register_get(&self, env: &Env, from: &Jid) -> Result<Element, Error> {
        let bare = from.to_bare().to_string();
        self.check_registrant(env, &bare)?;
        let mut q = el("query", NS_REGISTER);
        if let Some(nick) = self.registered_nick(&bare) {
            q.append_child(el("registered", NS_REGISTER));
            q.append_child(text_el("username", NS_REGISTER, nick));
            return Ok(q);
        }
        let mut x = el_attrs("x", NS_DATA, &[("type", Some("form"))]);
        x.append_child(field("FORM_TYPE", "hidden", None, &[REGISTER_FORM]));
        let mut nick = field(
            "muc#register_roomnick",
            "text-single",
            Some("Nickname"),
            &[],
        );
        nick.append_child(el("required", NS_DATA));
        x.append_child(nick);
        q.append_child(x);
        Ok(q)
    }

    /// `set`: register a nick (the form) or cancel the registration
    /// (`<remove/>`, which also ends a membership).
    pub(super) fn register_set(
        &mut self,
        env: &Env,
        from: &Jid,
        query: &Element,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        let bare = from.to_bare().to_string();
        let affiliation = self.check_registrant(env, &bare)?;
        if query.has_child("remove", NS_REGISTER) {
            let new = if affiliation == Affiliation::Member {
                Affiliation::None
            } else {
                affiliation
            };
            return self.set_affiliation(env, None, &bare, new, None, Some(None), out);
        }
        let x = query
            .get_child("x", NS_DATA)
            .ok_or_else(|| Error::new("modify", "bad-request").with_text("Missing dataform"))?;
        let form = SubmittedForm::parse(x);
        if form.form_type() != Some(REGISTER_FORM) {
            return Err(Error::new("modify", "bad-request").with_text("Error in form"));
        }
        let nick = form
            .value("muc#register_roomnick")
            .and_then(|n| stringprep::resourceprep(n).ok())
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| Error::new("modify", "bad-request").with_text("Invalid Nickname"))?
            .into_owned();
        if self.occupant_by_nick(&nick).is_some_and(|o| o.bare != bare)
            || self.nick_owner(&nick).is_some_and(|o| o != bare)
        {
            return Err(Error::new("cancel", "conflict"));
        }
        if self.registered_nick(&bare) == Some(nick.as_str()) {
            return Ok(());
        }
        let new = affiliation.max(Affiliation::Member);
        self.set_affiliation(env, None, &bare, new, None, Some(Some(&nick)), out)
    }
}
