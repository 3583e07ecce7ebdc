//! XEP-0065 wire types: `<query xmlns='http://jabber.org/protocol/bytestreams'/>`
//! and its children.
//!
//! xmpp-parsers 0.23 has the Jingle transport (XEP-0260) but not these, so
//! they are defined here with `xso` derives. One [`Query`] type serves every
//! use of the element (streamhost request and answer, initiation,
//! `streamhost-used`, activation), as in the XEP's schema.

use std::borrow::Cow;

use satellite::jid::Jid;
use satellite::xmpp::iq::{IqGetPayload, IqResultPayload, IqSetPayload};
use xso::{AsXml, AsXmlText, FromXml, FromXmlText};

/// `http://jabber.org/protocol/bytestreams`.
pub const NS: &str = "http://jabber.org/protocol/bytestreams";

/// The transport mode of a bytestream (`mode` attribute; `tcp` if absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `tcp`.
    Tcp,
    /// `udp` (XEP-0065 §8; not relayed by this proxy).
    Udp,
}

impl FromXmlText for Mode {
    fn from_xml_text(data: String) -> Result<Self, xso::error::Error> {
        match data.as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            _ => Err(xso::error::Error::Other(
                "Unknown value for 'mode' attribute.",
            )),
        }
    }
}

impl AsXmlText for Mode {
    fn as_xml_text(&self) -> Result<Cow<'_, str>, xso::error::Error> {
        Ok(Cow::Borrowed(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }))
    }
}

/// `<query/>`: the one element of XEP-0065.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Default)]
#[xml(namespace = NS, name = "query")]
pub struct Query {
    /// The stream id chosen by the initiator.
    #[xml(attribute(default))]
    pub sid: Option<String>,
    /// `tcp` (default) or `udp`.
    #[xml(attribute(default))]
    pub mode: Option<Mode>,
    /// XEP-0065 §5.3.2's `dstaddr` (a precomputed hash; informational).
    #[xml(attribute(default))]
    pub dstaddr: Option<String>,
    /// Stream hosts offered (initiation) or advertised (proxy answer).
    #[xml(child(n = ..))]
    pub streamhosts: Vec<StreamHost>,
    /// The stream host the target connected to.
    #[xml(child(default))]
    pub streamhost_used: Option<StreamHostUsed>,
    /// The target JID, in an activation request. Kept as text so that a
    /// malformed JID gets `jid-malformed` rather than `bad-request`.
    #[xml(extract(default, name = "activate", fields(text(type_ = String))))]
    pub activate: Option<String>,
}

impl IqGetPayload for Query {}
impl IqSetPayload for Query {}
impl IqResultPayload for Query {}

/// `<streamhost jid host port/>`: one address of a stream host.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(namespace = NS, name = "streamhost")]
pub struct StreamHost {
    /// The stream host's JID.
    #[xml(attribute)]
    pub jid: Jid,
    /// IP address or hostname to dial.
    #[xml(attribute)]
    pub host: String,
    /// TCP port (the XEP's default is 1080).
    #[xml(attribute(default))]
    pub port: Option<u16>,
}

/// `<streamhost-used jid/>`: the target's choice.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(namespace = NS, name = "streamhost-used")]
pub struct StreamHostUsed {
    /// The chosen stream host's JID.
    #[xml(attribute)]
    pub jid: Jid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use satellite::Element;

    /// Parses, serialises, parses again: both parses must agree, and the
    /// serialisation must equal the input (attribute order aside).
    fn round_trip(xml: &str) -> Query {
        let el: Element = xml.parse().expect("example is XML");
        let query = Query::try_from(el.clone()).expect("example parses");
        let back = Element::from(query.clone());
        assert_eq!(back, el, "serialisation differs from the example");
        assert_eq!(Query::try_from(back).expect("reparses"), query);
        query
    }

    #[test]
    fn xep_example_streamhost_request() {
        // XEP-0065 Example 4 (payload).
        let q = round_trip("<query xmlns='http://jabber.org/protocol/bytestreams'/>");
        assert_eq!(q, Query::default());
    }

    #[test]
    fn xep_example_proxy_answer() {
        // XEP-0065 Example 5.
        let q = round_trip(
            "<query xmlns='http://jabber.org/protocol/bytestreams'>\
             <streamhost host='24.24.24.1' jid='streamer.example.com' port='7625'/></query>",
        );
        assert_eq!(q.streamhosts.len(), 1);
        assert_eq!(q.streamhosts[0].port, Some(7625));
        assert_eq!(q.streamhosts[0].jid.as_str(), "streamer.example.com");
    }

    #[test]
    fn xep_example_initiation() {
        // XEP-0065 Example 12: two stream hosts, one of them the proxy.
        let q = round_trip(
            "<query xmlns='http://jabber.org/protocol/bytestreams' mode='tcp' sid='vxf9n471bn46'>\
             <streamhost host='192.168.4.1' jid='requester@example.com/foo' port='5086'/>\
             <streamhost host='24.24.24.1' jid='streamer.example.com' port='7625'/></query>",
        );
        assert_eq!(q.sid.as_deref(), Some("vxf9n471bn46"));
        assert_eq!(q.mode, Some(Mode::Tcp));
        assert_eq!(q.streamhosts.len(), 2);
    }

    #[test]
    fn xep_example_streamhost_used() {
        // XEP-0065 Example 17.
        let q = round_trip(
            "<query xmlns='http://jabber.org/protocol/bytestreams' sid='vxf9n471bn46'>\
             <streamhost-used jid='streamer.example.com'/></query>",
        );
        assert_eq!(
            q.streamhost_used.map(|u| u.jid.to_string()).as_deref(),
            Some("streamer.example.com")
        );
    }

    #[test]
    fn xep_example_activation() {
        // XEP-0065 Example 23.
        let q = round_trip(
            "<query xmlns='http://jabber.org/protocol/bytestreams' sid='vxf9n471bn46'>\
             <activate>target@example.org/bar</activate></query>",
        );
        assert_eq!(q.activate.as_deref(), Some("target@example.org/bar"));
    }

    #[test]
    fn ipv6_host_and_unknown_mode() {
        let q = round_trip(
            "<query xmlns='http://jabber.org/protocol/bytestreams'>\
             <streamhost host='2001:db8::7' jid='proxy.example.org' port='7777'/></query>",
        );
        assert_eq!(q.streamhosts[0].host, "2001:db8::7");
        let el: Element = "<query xmlns='http://jabber.org/protocol/bytestreams' mode='sctp'/>"
            .parse()
            .expect("xml");
        assert!(Query::try_from(el).is_err());
    }
}
