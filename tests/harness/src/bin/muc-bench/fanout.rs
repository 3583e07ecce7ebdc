//! The trivial fan-out component (muc-bench's internal `--fanout-component`
//! mode): one XML stream, no framework, no rules. A presence to
//! `room@jid/nick` adds the sender to the room and answers with a
//! self-presence (status 110, nothing else is broadcast); a groupchat
//! message to `room@jid` goes to every occupant as it is. The ceiling of
//! any MUC component through this Prosody with this client.

use std::collections::HashMap;

use futures::{SinkExt, StreamExt as _};
use satellite_harness::c2s::name;
use tokio_xmpp::xmlstream::ReadError;
use xmpp_parsers::minidom::Element;

use crate::pool::NS_MUC_USER;

const NS_COMPONENT: &str = "jabber:component:accept";

/// `--fanout-component PORT JID SECRET`: serves until SIGTERM.
pub async fn main(args: Vec<String>) -> Result<(), String> {
    let [port, jid, secret] = args.as_slice() else {
        return Err("usage: muc-bench --fanout-component PORT JID SECRET".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    let mut stream = satellite_harness::raw_component::element_stream(port, jid, secret).await?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    // room bare JID -> (occupant full JID, nick)
    let mut rooms: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut out: Vec<Element> = Vec::new();
    loop {
        let el = tokio::select! {
            _ = sigterm.recv() => return Ok(()),
            el = stream.next() => el,
        };
        let mut next = Some(el);
        // Handle everything already received, then flush once.
        while let Some(el) = next.take() {
            match el {
                Some(Ok(el)) => handle(&mut rooms, &el, &mut out),
                Some(Err(ReadError::SoftTimeout | ReadError::ParseError(_))) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("the server closed the connection".into()),
            }
            next = futures::FutureExt::now_or_never(stream.next());
        }
        for el in out.drain(..) {
            stream.feed(&el).await.map_err(|e| format!("write: {e}"))?;
        }
        SinkExt::<&Element>::flush(&mut stream)
            .await
            .map_err(|e| format!("flush: {e}"))?;
    }
}

fn handle(
    rooms: &mut HashMap<String, Vec<(String, String)>>,
    el: &Element,
    out: &mut Vec<Element>,
) {
    let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
        return;
    };
    match el.name() {
        "presence" if el.attr("type").is_none() => {
            let Some((room, nick)) = to.split_once('/') else {
                return;
            };
            let occupants = rooms.entry(room.to_owned()).or_default();
            if !occupants.iter().any(|(jid, _)| jid == from) {
                occupants.push((from.to_owned(), nick.to_owned()));
            }
            out.push(
                Element::builder("presence", NS_COMPONENT)
                    .attr(name("from"), to)
                    .attr(name("to"), from)
                    .append(
                        Element::builder("x", NS_MUC_USER)
                            .append(
                                Element::builder("item", NS_MUC_USER)
                                    .attr(name("affiliation"), "none")
                                    .attr(name("role"), "participant"),
                            )
                            .append(
                                Element::builder("status", NS_MUC_USER).attr(name("code"), "110"),
                            ),
                    )
                    .build(),
            );
        }
        "message" if el.attr("type") == Some("groupchat") => {
            let Some(occupants) = rooms.get(to) else {
                return;
            };
            let Some((_, nick)) = occupants.iter().find(|(jid, _)| jid == from) else {
                return;
            };
            let room_from = format!("{to}/{nick}");
            let body = el
                .children()
                .find(|c| c.name() == "body")
                .map(Element::text)
                .unwrap_or_default();
            for (jid, _) in occupants {
                out.push(
                    Element::builder("message", NS_COMPONENT)
                        .attr(name("type"), "groupchat")
                        .attr(name("from"), room_from.as_str())
                        .attr(name("to"), jid.as_str())
                        .append(Element::builder("body", NS_COMPONENT).append(body.as_str()))
                        .build(),
                );
            }
        }
        _ => {}
    }
}
