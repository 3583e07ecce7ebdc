//! A runner for scansion scripts (the scripted XMPP conversations of
//! Prosody's test suite, kept as conformance data in
//! `shared/conformance/prosody-scansion/`), with real slixmpp clients.
//!
//! Supported: `[Client] Name` headers (`jid:`, `password:`), `Name
//! connects`, `Name disconnects`, `Name sends:`, `Name receives:` (a
//! tab-indented stanza) and `Name receives: nothing`; `${Name's full
//! JID}` / `${Name's JID}` substitution; `{scansion:any}` attribute values.
//!
//! Matching is loose, as scansion's: the received stanza must have the
//! expected name and namespace, every expected attribute (with its value),
//! the expected text when there is any, and the expected children in order
//! (more are allowed). Stanzas the script does not mention are skipped.

use std::collections::HashMap;
use std::time::Duration;

use xmpp_parsers::minidom::Element;

use crate::client::{Client, parse_stanza};

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// `[Client]` blocks: name → (jid, password).
    pub clients: Vec<(String, String, String)>,
    /// The actions, in order.
    pub steps: Vec<Step>,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `Name connects`.
    Connect(String),
    /// `Name disconnects`.
    Disconnect(String),
    /// `Name sends:` and the stanza.
    Send(String, String),
    /// `Name receives:` and the stanza.
    Receive(String, String),
    /// `Name receives: nothing`.
    ReceiveNothing(String),
}

/// Parses a script.
pub fn parse(text: &str) -> Result<Script, String> {
    let (header, body) = text
        .split_once("\n-----")
        .ok_or("no line of dashes between the header and the actions")?;
    let mut clients: Vec<(String, String, String)> = Vec::new();
    for line in header.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("[Client] ") {
            clients.push((name.trim().to_owned(), String::new(), String::new()));
        } else if let Some((key, value)) = line.trim().split_once(':')
            && line.starts_with('\t')
            && let Some(client) = clients.last_mut()
        {
            match key.trim() {
                "jid" => client.1 = value.trim().to_owned(),
                "password" => client.2 = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut steps = Vec::new();
    let mut lines = body.lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let mut block = || {
            let mut xml = String::new();
            while let Some(next) = lines.peek() {
                if !next.starts_with('\t') && !next.trim().is_empty() {
                    break;
                }
                xml.push_str(next.trim());
                xml.push(' ');
                lines.next();
            }
            xml.trim().to_owned()
        };
        let step = if let Some(name) = trimmed.strip_suffix(" connects") {
            Step::Connect(name.to_owned())
        } else if let Some(name) = trimmed.strip_suffix(" disconnects") {
            Step::Disconnect(name.to_owned())
        } else if let Some(name) = trimmed.strip_suffix(" sends:") {
            Step::Send(name.to_owned(), block())
        } else if let Some(name) = trimmed.strip_suffix(" receives: nothing") {
            Step::ReceiveNothing(name.to_owned())
        } else if let Some(name) = trimmed.strip_suffix(" receives:") {
            Step::Receive(name.to_owned(), block())
        } else {
            return Err(format!("unknown action: {trimmed}"));
        };
        steps.push(step);
    }
    Ok(Script { clients, steps })
}

/// Whether `got` matches `expected` loosely (see the module docs).
pub fn loose_match(expected: &Element, got: &Element) -> bool {
    if expected.name() != got.name() || expected.ns() != got.ns() {
        return false;
    }
    for ((ns, name), value) in expected.attrs().iter() {
        let ok = match got.attrs().get(ns, name) {
            Some(v) => value == "{scansion:any}" || v == value,
            None => false,
        };
        if !ok {
            return false;
        }
    }
    let text = expected.text();
    if !text.trim().is_empty() && got.text().trim() != text.trim() {
        return false;
    }
    // Each expected child matches a distinct received child, in any order
    // (XEP-0363's own examples put <put/> before <get/>, Prosody the other
    // way round).
    let got: Vec<&Element> = got.children().collect();
    let mut used = vec![false; got.len()];
    expected.children().all(|want| {
        let found = got
            .iter()
            .enumerate()
            .position(|(i, c)| !used[i] && loose_match(want, c));
        found.map(|i| used[i] = true).is_some()
    })
}

/// Runs `script` against a server's c2s port on 127.0.0.1. A stanza that
/// is not received in time panics with every stanza seen; other problems
/// are returned.
pub async fn run(script: &Script, c2s_port: u16, timeout: Duration) -> Result<(), String> {
    let mut connected: HashMap<String, Client> = HashMap::new();
    let vars = |text: &str, connected: &HashMap<String, Client>| {
        let mut out = text.to_owned();
        for (name, c) in connected {
            out = out
                .replace(&format!("${{{name}'s full JID}}"), &c.jid)
                .replace(&format!("${{{name}'s JID}}"), c.bare_jid());
        }
        out
    };
    for (i, step) in script.steps.iter().enumerate() {
        let at = |what: &str| format!("step {} ({step:?}): {what}", i + 1);
        match step {
            Step::Connect(name) => {
                let (_, jid, password) = script
                    .clients
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .ok_or_else(|| at("no such client in the header"))?;
                let client = Client::connect(c2s_port, jid, password).await;
                connected.insert(name.clone(), client);
            }
            Step::Disconnect(name) => {
                if let Some(client) = connected.remove(name) {
                    client.disconnect().await;
                }
            }
            Step::Send(name, xml) => {
                let xml = vars(xml, &connected);
                let client = connected.get_mut(name).ok_or_else(|| at("not connected"))?;
                client.send_raw(&xml).await;
            }
            Step::Receive(name, xml) => {
                let expected = parse_stanza(&vars(xml, &connected));
                let client = connected.get_mut(name).ok_or_else(|| at("not connected"))?;
                // Panics (with every stanza seen) when nothing matches.
                client
                    .recv_matching(|got| loose_match(&expected, got), timeout)
                    .await;
            }
            Step::ReceiveNothing(name) => {
                let client = connected.get_mut(name).ok_or_else(|| at("not connected"))?;
                client
                    .expect_none_matching(|_| true, Duration::from_millis(500))
                    .await;
            }
        }
    }
    for (_, client) in connected {
        client.disconnect().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_loosely() {
        let script = parse(
            "# t\n\n[Client] Romeo\n\tpassword: pw\n\tjid: romeo@localhost/r\n\n-----\n\nRomeo connects\n\nRomeo sends:\n\t<iq type='get' id='1'>\n\t\t<q xmlns='urn:x'/>\n\t</iq>\n\nRomeo receives:\n\t<iq id='1' from='{scansion:any}'/>\n\nRomeo disconnects\n",
        )
        .expect("parses");
        assert_eq!(
            script.clients,
            [("Romeo".into(), "romeo@localhost/r".into(), "pw".into())]
        );
        assert_eq!(script.steps.len(), 4);
        let Step::Receive(_, xml) = &script.steps[2] else {
            panic!("{:?}", script.steps[2]);
        };
        let expected = parse_stanza(xml);
        let got = parse_stanza("<iq id='1' from='x' type='result'><extra xmlns='urn:y'/></iq>");
        assert!(loose_match(&expected, &got));
        let other = parse_stanza("<iq id='2' from='x'/>");
        assert!(!loose_match(&expected, &other));
        let with_child = parse_stanza("<iq xmlns='jabber:client'><a xmlns='urn:a'>t</a></iq>");
        assert!(!loose_match(
            &with_child,
            &parse_stanza("<iq><a xmlns='urn:a'>u</a></iq>")
        ));
        assert!(loose_match(
            &with_child,
            &parse_stanza("<iq><b xmlns='urn:b'/><a xmlns='urn:a'>t</a></iq>")
        ));
        let two = parse_stanza("<iq><a xmlns='urn:a'/><a xmlns='urn:a'/></iq>");
        assert!(!loose_match(
            &two,
            &parse_stanza("<iq><a xmlns='urn:a'/></iq>")
        ));
    }
}
