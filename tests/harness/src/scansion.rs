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
//!
//! `scansion:strict='true'|'false'` on an expected element (the prefix
//! needs no declaration, as in scansion) switches that element and what it
//! contains to exact matching or back: exactly the expected attributes, the
//! same text, and the same children in the same order.
//! [`Matching::Scansion`] also matches elements of [`STRICT_NAMESPACES`]
//! exactly unless they say `scansion:strict='false'`, as scansion does:
//! Prosody's scripts write `scansion:strict='false'` on such elements where
//! more may come, and Prosody orders its form fields for them. Prosody's
//! own MUC passes every MUC script so
//! (`tests/harness/tests/prosody_muc_scripts.rs`).
//!
//! `${Name's JID}` of a client not connected yet is its header JID.

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

impl Script {
    /// The accounts the script logs in with, (localpart, password), each
    /// once: what a private server must have (its `users`).
    pub fn accounts(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (_, jid, password) in &self.clients {
            let local = jid.split(['@', '/']).next().unwrap_or_default().to_owned();
            if !out.iter().any(|(l, _)| *l == local) {
                out.push((local, password.clone()));
            }
        }
        out
    }

    /// Replaces a domain everywhere in the script: the header's JIDs and
    /// every stanza. Prosody's scripts address `conference.localhost`; a
    /// service under test may live elsewhere (`rooms.localhost`).
    pub fn replace_domain(&mut self, from: &str, to: &str) {
        for (_, jid, _) in &mut self.clients {
            *jid = jid.replace(from, to);
        }
        for step in &mut self.steps {
            if let Step::Send(_, xml) | Step::Receive(_, xml) = step {
                *xml = xml.replace(from, to);
            }
        }
    }

    /// The names of the clients the script declares.
    pub fn client_names(&self) -> impl Iterator<Item = &str> {
        self.clients.iter().map(|(name, _, _)| name.as_str())
    }
}

/// The repository's copy of Prosody's scansion scripts
/// (`tests/conformance/prosody-scansion/`).
pub fn conformance_dir() -> std::path::PathBuf {
    crate::integration_dir().join("../conformance/prosody-scansion")
}

/// Reads and parses a script of [`conformance_dir`], e.g.
/// `"muc_create_destroy.scs"`. Panics if it is missing or does not parse.
pub fn load(name: &str) -> Script {
    let path = conformance_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The MUC scripts of [`conformance_dir`] (`muc_*.scs` and `issue*.scs`),
/// sorted by name.
pub fn muc_scripts() -> Vec<String> {
    let dir = conformance_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".scs") && (n.starts_with("muc_") || n.starts_with("issue")))
        .collect();
    names.sort();
    names
}

/// The namespace the runner gives the `scansion:` prefix of expected
/// stanzas (scripts use the prefix without declaring it).
pub const SCANSION_NS: &str = "https://matthewwild.co.uk/projects/scansion";

/// Namespaces whose elements [`Matching::Scansion`] matches exactly unless
/// they say `scansion:strict='false'`: where Prosody's scripts write
/// `scansion:strict='false'` to allow more, and where Prosody orders its
/// output (form fields) for its scripts to pass.
pub const STRICT_NAMESPACES: &[&str] = &[
    "http://jabber.org/protocol/muc#user",
    "http://jabber.org/protocol/disco#info",
    "jabber:x:data",
];

/// The attribute value that matches any value.
const ANY: &str = "{scansion:any}";

/// How expected stanzas are compared with received ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matching {
    /// Loose everywhere except where `scansion:strict='true'` asks (see
    /// the module docs). What [`run`] and [`loose_match`] do.
    #[default]
    Loose,
    /// Scansion's defaults: also exact for elements of
    /// [`STRICT_NAMESPACES`] (and what they contain), unless
    /// `scansion:strict='false'`.
    Scansion,
}

/// Parses an expected stanza of a script: like
/// [`parse_stanza`], with the `scansion:`
/// prefix declared when the stanza uses it.
pub fn parse_expected(xml: &str) -> Element {
    if !xml.contains("scansion:") || xml.contains("xmlns:scansion") {
        return parse_stanza(xml);
    }
    let trimmed = xml.trim_start();
    let name_end = trimmed
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(trimmed.len());
    parse_stanza(&format!(
        "{} xmlns:scansion='{SCANSION_NS}'{}",
        &trimmed[..name_end],
        &trimmed[name_end..]
    ))
}

/// Whether `got` matches `expected` loosely (see the module docs).
pub fn loose_match(expected: &Element, got: &Element) -> bool {
    matches(expected, got, Matching::Loose)
}

/// Whether `got` matches `expected` under `matching` (see the module docs).
pub fn matches(expected: &Element, got: &Element, matching: Matching) -> bool {
    element_matches(expected, got, matching, false)
}

fn element_matches(expected: &Element, got: &Element, matching: Matching, inherited: bool) -> bool {
    if expected.name() != got.name() || expected.ns() != got.ns() {
        return false;
    }
    let inherited = inherited
        || (matching == Matching::Scansion && STRICT_NAMESPACES.contains(&expected.ns().as_str()));
    let strict = match expected
        .attrs()
        .get(SCANSION_NS, "strict")
        .map(String::as_str)
    {
        Some("true") => true,
        Some("false") => false,
        _ => inherited,
    };
    let mut wanted_attrs = 0;
    for ((ns, name), value) in expected.attrs().iter() {
        if ns.as_str() == SCANSION_NS {
            continue;
        }
        wanted_attrs += 1;
        let ok = match got.attrs().get(ns, name) {
            Some(v) => value == ANY || v == value,
            None => false,
        };
        if !ok {
            return false;
        }
    }
    if strict && got.attrs().iter().count() != wanted_attrs {
        return false;
    }
    let text = expected.text();
    let text = text.trim();
    if text != ANY && (strict || !text.is_empty()) && got.text().trim() != text {
        return false;
    }
    if strict {
        // The same children, in the same order.
        return expected.children().count() == got.children().count()
            && expected
                .children()
                .zip(got.children())
                .all(|(want, c)| element_matches(want, c, matching, true));
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
            .position(|(i, c)| !used[i] && element_matches(want, c, matching, false));
        found.map(|i| used[i] = true).is_some()
    })
}

/// How [`run_with`] runs a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// How long a `receives:` waits for its stanza.
    pub timeout: Duration,
    /// How received stanzas are compared.
    pub matching: Matching,
    /// How long `receives: nothing` listens.
    pub nothing_for: Duration,
    /// A pause before a client sends right after another client sent.
    /// Scripts let one client act on another's stanza without waiting for
    /// a reply (an affiliation change, then the new member's request);
    /// scansion's clients share one connection loop, the harness's are
    /// separate processes, so without a pause the second stanza may reach
    /// the server first.
    pub handover: Duration,
}

impl RunOptions {
    /// Loose matching, `receives: nothing` listening 500 ms.
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions {
            timeout,
            matching: Matching::Loose,
            nothing_for: Duration::from_millis(500),
            handover: Duration::ZERO,
        }
    }

    /// Scansion's default strictness ([`Matching::Scansion`]) and a
    /// 100 ms [`handover`](RunOptions::handover): how Prosody's own MUC
    /// passes its scripts here.
    pub fn scansion(timeout: Duration) -> RunOptions {
        RunOptions {
            matching: Matching::Scansion,
            handover: Duration::from_millis(100),
            ..RunOptions::new(timeout)
        }
    }
}

/// Runs `script` against a server's c2s port on 127.0.0.1. A stanza that
/// is not received in time panics with every stanza seen; other problems
/// are returned.
pub async fn run(script: &Script, c2s_port: u16, timeout: Duration) -> Result<(), String> {
    run_with(script, c2s_port, RunOptions::new(timeout)).await
}

/// [`run`] with options. A `receives:` that fails panics with the step,
/// the expected stanza and every stanza the client saw.
pub async fn run_with(script: &Script, c2s_port: u16, options: RunOptions) -> Result<(), String> {
    use futures::FutureExt as _;
    let RunOptions {
        timeout,
        matching,
        nothing_for,
        handover,
    } = options;
    let mut last_sender: Option<&str> = None;
    let mut connected: HashMap<String, Client> = HashMap::new();
    // A client's JIDs are known once it is connected; before that (a
    // script may name someone who has not connected yet), the header's.
    let vars = |text: &str, connected: &HashMap<String, Client>| {
        let mut out = text.to_owned();
        for (name, c) in connected {
            out = out
                .replace(&format!("${{{name}'s full JID}}"), &c.jid)
                .replace(&format!("${{{name}'s JID}}"), c.bare_jid());
        }
        for (name, jid, _) in &script.clients {
            let bare = jid.split('/').next().unwrap_or_default();
            out = out
                .replace(&format!("${{{name}'s full JID}}"), jid)
                .replace(&format!("${{{name}'s JID}}"), bare);
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
                if last_sender.is_some_and(|last| last != name) && !handover.is_zero() {
                    tokio::time::sleep(handover).await;
                }
                last_sender = Some(name);
                let xml = vars(xml, &connected);
                let client = connected.get_mut(name).ok_or_else(|| at("not connected"))?;
                client.send_raw(&xml).await;
            }
            Step::Receive(name, xml) => {
                let xml = vars(xml, &connected);
                let expected = parse_expected(&xml);
                let client = connected.get_mut(name).ok_or_else(|| at("not connected"))?;
                // Panics (with every stanza seen) when nothing matches.
                let received = std::panic::AssertUnwindSafe(
                    client.recv_matching(|got| matches(&expected, got, matching), timeout),
                )
                .catch_unwind()
                .await;
                if let Err(panic) = received {
                    let why = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    panic!(
                        "{}\nexpected ({matching:?} matching): {xml}\n{why}",
                        at("no matching stanza")
                    );
                }
            }
            Step::ReceiveNothing(name) => {
                let client = connected.get_mut(name).ok_or_else(|| at("not connected"))?;
                client.expect_none_matching(|_| true, nothing_for).await;
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

    /// Every MUC script parses, and every stanza it expects too.
    #[test]
    fn parses_every_muc_script() {
        let names = muc_scripts();
        assert!(names.len() >= 17, "{names:?}");
        for name in names {
            let script = load(&name);
            assert!(!script.clients.is_empty(), "{name}");
            assert!(!script.steps.is_empty(), "{name}");
            for (client, jid, password) in &script.clients {
                assert!(jid.contains("@localhost"), "{name}: {client} {jid}");
                assert!(!password.is_empty(), "{name}: {client}");
            }
            let names: Vec<&str> = script.client_names().collect();
            for step in &script.steps {
                let (Step::Connect(who)
                | Step::Disconnect(who)
                | Step::Send(who, _)
                | Step::Receive(who, _)
                | Step::ReceiveNothing(who)) = step;
                assert!(names.contains(&who.as_str()), "{name}: {step:?}");
                if let Step::Receive(_, xml) | Step::Send(_, xml) = step {
                    // Substituted as the runner does, then parsed.
                    let xml = xml
                        .replace("${", "")
                        .replace("'s full JID}", "@localhost/r")
                        .replace("'s JID}", "@localhost");
                    parse_expected(&xml);
                }
            }
        }
    }

    #[test]
    fn clients_with_apostrophes_and_several_resources() {
        let script = load("issue978-multi.scs");
        assert!(script.client_names().any(|n| n == "Juliet's phone"));
        assert!(
            script
                .steps
                .contains(&Step::Connect("Juliet's phone".to_owned()))
        );
        // Juliet and her phone are one account.
        let accounts = script.accounts();
        let juliets = script
            .clients
            .iter()
            .filter(|(n, _, _)| n.starts_with("Juliet"))
            .map(|(_, jid, _)| jid.split('@').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>();
        assert_eq!(juliets.len(), 2);
        assert_eq!(accounts.iter().filter(|(l, _)| *l == juliets[0]).count(), 1);
    }

    #[test]
    fn replaces_the_muc_domain() {
        let mut script = load("muc_create_destroy.scs");
        script.replace_domain("conference.localhost", "rooms.localhost");
        let text = format!("{script:?}");
        assert!(!text.contains("conference.localhost"));
        assert!(text.contains("garden@rooms.localhost/romeo"));
    }

    #[test]
    fn scansion_strict_attribute() {
        // Strict: nothing more than expected.
        let expected = parse_expected(
            "<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info' node='n' scansion:strict='true'/></iq>",
        );
        let empty = parse_stanza(
            "<iq type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#info' node='n'/></iq>",
        );
        let more = parse_stanza(
            "<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info' node='n'><identity category='conference' type='text'/></query></iq>",
        );
        for matching in [Matching::Loose, Matching::Scansion] {
            assert!(matches(&expected, &empty, matching), "{matching:?}");
            assert!(!matches(&expected, &more, matching), "{matching:?}");
        }
        // The attribute itself is never looked for in what was received.
        let loose = parse_expected(
            "<presence><x xmlns='http://jabber.org/protocol/muc#user' scansion:strict='false'><status code='110'/></x></presence>",
        );
        let got = parse_stanza(
            "<presence from='r@c/n'><x xmlns='http://jabber.org/protocol/muc#user'><item role='moderator'/><status code='110'/></x></presence>",
        );
        assert!(matches(&loose, &got, Matching::Scansion));
        assert!(loose_match(&loose, &got));
    }

    #[test]
    fn scansion_default_strictness() {
        // Loose by default, exact in STRICT_NAMESPACES with Scansion.
        let expected = parse_expected(
            "<message type='groupchat'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member'/></x></message>",
        );
        let exact = parse_stanza(
            "<message type='groupchat' id='1' from='r@c/n'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member'/></x><stanza-id xmlns='urn:xmpp:sid:0' id='x'/></message>",
        );
        assert!(matches(&expected, &exact, Matching::Scansion));
        for more in [
            "<item affiliation='member' role='participant'/>",
            "<status code='1'/><item affiliation='member'/>",
        ] {
            let got = parse_stanza(&format!(
                "<message type='groupchat'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'>{more}</x></message>"
            ));
            assert!(loose_match(&expected, &got), "{more}");
            assert!(!matches(&expected, &got, Matching::Scansion), "{more}");
        }
        // Loose elsewhere: extra attributes and children of an <error>.
        let error = parse_expected(
            "<presence type='error'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
        );
        let got = parse_stanza(
            "<presence type='error'><error by='r@c' type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></presence>",
        );
        assert!(matches(&error, &got, Matching::Scansion));
        // Order counts among exact children, and strictness is inherited.
        let form = parse_expected(
            "<iq><query xmlns='urn:q' scansion:strict='true'><x xmlns='urn:x'><field var='a'/><field var='b'/></x></query></iq>",
        );
        let in_order = parse_stanza(
            "<iq><query xmlns='urn:q'><x xmlns='urn:x'><field var='a'/><field var='b'/></x></query></iq>",
        );
        let swapped = parse_stanza(
            "<iq><query xmlns='urn:q'><x xmlns='urn:x'><field var='b'/><field var='a'/></x></query></iq>",
        );
        assert!(loose_match(&form, &in_order));
        assert!(!loose_match(&form, &swapped));
        // An exact empty element wants no text; strict='false' lets it be.
        let version = parse_expected(
            "<iq><query xmlns='jabber:iq:version' scansion:strict='true'><name>P</name><version/></query></iq>",
        );
        let got = parse_stanza(
            "<iq><query xmlns='jabber:iq:version'><name>P</name><version>0.12.3</version></query></iq>",
        );
        assert!(!loose_match(&version, &got));
        let version = parse_expected(
            "<iq><query xmlns='jabber:iq:version' scansion:strict='true'><name>P</name><version scansion:strict='false'/></query></iq>",
        );
        assert!(loose_match(&version, &got));
        // {scansion:any} in text.
        let any = parse_expected("<message><body>{scansion:any}</body></message>");
        assert!(matches(
            &any,
            &parse_stanza("<message><body>x</body></message>"),
            Matching::Scansion
        ));
    }
}
