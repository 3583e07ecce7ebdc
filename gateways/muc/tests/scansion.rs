//! Prosody's MUC scansion scripts replayed against the room engine alone:
//! each client's stanzas go to the engine as the server would pass them
//! (with `from` set), and what the engine sends is matched against what
//! the script expects, in order, tolerating stanzas it does not mention
//! (as the scripts' README asks). No network: this checks the engine's
//! stanzas; the service's own tests run the same scripts through a real
//! Prosody.
//!
//! The scripts are the repository's copy of the conformance data, in
//! `tests/conformance/prosody-scansion/`; the test fails if they are
//! missing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use satellite::jid::{BareJid, Jid};
use satellite::{Element, IqRequest, IqType};
use satellite_muc::room::{Env, Outcome, Room};
use satellite_muc::service::{Absent, absent_room};
use satellite_muc::settings::Settings;

const SERVICE: &str = "conference.localhost";
const NS: &str = "jabber:component:accept";
const SCANSION: &str = "https://matthewwild.co.uk/projects/scansion";

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/prosody-scansion")
}

struct Client {
    full: String,
    bare: String,
    connected: bool,
    queue: VecDeque<Element>,
}

struct World {
    settings: Settings,
    service: BareJid,
    admins: Vec<BareJid>,
    now: SystemTime,
    rooms: HashMap<String, Room>,
    clients: BTreeMap<String, Client>,
}

impl World {
    fn env(&self) -> (BareJid, Vec<BareJid>, Settings, SystemTime) {
        (
            self.service.clone(),
            self.admins.clone(),
            self.settings.clone(),
            self.now,
        )
    }

    /// Delivers what the engine sent to the clients it is addressed to.
    fn deliver(&mut self, out: Outcome) {
        for s in out.stanzas {
            let Some(to) = s.attr("to").map(str::to_owned) else {
                continue;
            };
            for c in self.clients.values_mut() {
                if c.connected && (c.full == to || c.bare == to) {
                    c.queue.push_back(s.clone());
                }
            }
        }
    }

    /// One stanza from a client, as the server routes it to the service.
    fn send(&mut self, name: &str, mut stanza: Element) -> Result<(), String> {
        let client = self.clients.get(name).ok_or("unknown client")?;
        let from = client.full.clone();
        stanza.set_attr(
            satellite::minidom::rxml::Namespace::NONE,
            satellite::minidom::rxml::NcName::try_from("from").map_err(|e| e.to_string())?,
            from.clone(),
        );
        // The server preps addresses before routing (resourceprep maps
        // variation selectors to nothing).
        if let Some(to) = stanza.attr("to").map(|t| t.replace('\u{fe0f}', ""))
            && let Ok(name) = satellite::minidom::rxml::NcName::try_from("to")
        {
            stanza.set_attr(satellite::minidom::rxml::Namespace::NONE, name, to);
        }
        let Some(to) = stanza.attr("to").map(str::to_owned) else {
            // To the client's own server: a presence comes back as is.
            if let Some(c) = self.clients.get_mut(name) {
                c.queue.push_back(stanza);
            }
            return Ok(());
        };
        let room_jid = to.split('/').next().unwrap_or_default().to_owned();
        if room_jid == SERVICE {
            return self.service_stanza(name, &stanza);
        }
        if !room_jid.ends_with(&format!("@{SERVICE}")) {
            return Ok(());
        }
        let (service, admins, settings, now) = self.env();
        let env = Env {
            service: &service,
            admins: &admins,
            settings: &settings,
            now,
        };
        let live = self.rooms.len();
        let mut room = match self.rooms.remove(&room_jid) {
            Some(r) => r,
            None => match absent_room(&env, &stanza, live) {
                Absent::Create(r) => *r,
                Absent::Reject(e) => {
                    self.deliver(Outcome {
                        stanzas: vec![e],
                        ..Outcome::default()
                    });
                    return Ok(());
                }
                Absent::Ignore => return Ok(()),
            },
        };
        let out = match stanza.name() {
            "presence" => room.handle_presence(&env, &stanza),
            "message" => room.handle_message(&env, &stanza),
            "iq" => match stanza.attr("type") {
                Some("result" | "error") => room.handle_iq_response(&stanza),
                t => {
                    let req = IqRequest {
                        from: Jid::new(&from).map_err(|e| e.to_string())?,
                        to: Jid::new(&to).map_err(|e| e.to_string())?,
                        id: stanza.attr("id").unwrap_or_default().to_owned(),
                        type_: if t == Some("set") {
                            IqType::Set
                        } else {
                            IqType::Get
                        },
                        payload: stanza
                            .children()
                            .next()
                            .cloned()
                            .ok_or("iq without payload")?,
                    };
                    room.handle_iq(&env, &req)
                }
            },
            other => return Err(format!("unexpected stanza {other}")),
        };
        let gone = out.room_gone;
        self.deliver(out);
        if !gone {
            self.rooms.insert(room_jid, room);
        }
        Ok(())
    }

    /// The service's own address: Prosody's destroy command, as an admin
    /// would run it through the glue.
    fn service_stanza(&mut self, name: &str, stanza: &Element) -> Result<(), String> {
        let Some(cmd) = stanza.children().find(|c| c.name() == "command") else {
            return Ok(());
        };
        let rooms: Vec<String> = cmd
            .children()
            .flat_map(|x| x.children())
            .filter(|f| f.attr("var") == Some("rooms"))
            .flat_map(|f| f.children().map(Element::text))
            .collect();
        let (service, admins, settings, now) = self.env();
        let env = Env {
            service: &service,
            admins: &admins,
            settings: &settings,
            now,
        };
        let mut destroyed = Vec::new();
        for jid in rooms {
            if let Some(mut room) = self.rooms.remove(&jid) {
                let mut out = Outcome::default();
                room.destroy(&env, None, None, None, &mut out);
                self.deliver(out);
                destroyed.push(jid);
            }
        }
        let node = cmd.attr("node").unwrap_or_default();
        let reply: Element = format!(
            "<iq xmlns='{NS}' type='result' id='{}' from='{SERVICE}' to='{}'><command xmlns='http://jabber.org/protocol/commands' node='{node}' status='completed' sessionid='1'><note type='info'>The following rooms were destroyed:&#10;{}</note></command></iq>",
            stanza.attr("id").unwrap_or_default(),
            self.clients[name].full,
            destroyed.join("&#10;"),
        )
        .parse()
        .map_err(|e| format!("{e}"))?;
        self.clients
            .get_mut(name)
            .ok_or("client")?
            .queue
            .push_back(reply);
        Ok(())
    }

    /// The server tells every room a disconnected client was in.
    fn disconnect(&mut self, name: &str) -> Result<(), String> {
        let full = self.clients[name].full.clone();
        let targets: Vec<String> = self
            .rooms
            .values()
            .filter_map(|r| r.occupant_by_session(&full).map(|o| o.jid.clone()))
            .collect();
        for to in targets {
            let p: Element = format!("<presence xmlns='{NS}' type='unavailable' to='{to}'/>")
                .parse()
                .map_err(|e| format!("{e}"))?;
            self.send(name, p)?;
        }
        if let Some(c) = self.clients.get_mut(name) {
            c.connected = false;
            c.queue.clear();
        }
        Ok(())
    }
}

/// Whether `actual` matches what the script expects: same name and
/// namespace, the expected attributes (`{scansion:any}` matches any value),
/// the expected text, and each expected child matched by a distinct actual
/// one; strict elements (scansion:strict, or a payload namespace) have no
/// other children.
fn matches(expected: &Element, actual: &Element) -> bool {
    if expected.name() != actual.name() || expected.ns() != actual.ns() {
        return false;
    }
    for ((ns, name), value) in expected.attrs().iter() {
        if !ns.is_empty() {
            continue;
        }
        match actual.attr(name.as_str()) {
            Some(v) if value == "{scansion:any}" || v == value => {}
            _ => return false,
        }
    }
    let text = expected.text();
    if !text.trim().is_empty() && actual.text().trim() != text.trim() {
        return false;
    }
    let server_added = |c: &&Element| c.ns() == "vcard-temp:x:update";
    let wanted: Vec<&Element> = expected.children().filter(|c| !server_added(c)).collect();
    let strict = match expected.attr_ns(SCANSION, "strict") {
        Some("true") => true,
        Some(_) => false,
        None => expected.ns() != NS,
    };
    let have: Vec<&Element> = actual.children().filter(|c| !server_added(c)).collect();
    if strict && wanted.len() != have.len() {
        return false;
    }
    let mut used = vec![false; have.len()];
    for w in wanted {
        let Some(i) = (0..have.len()).find(|&i| !used[i] && matches(w, have[i])) else {
            return false;
        };
        used[i] = true;
    }
    true
}

fn run(path: &PathBuf) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (header, body) = text.split_once("\n-----").ok_or("no line of dashes")?;
    let mut world = World {
        settings: Settings::default(),
        service: BareJid::new(SERVICE).map_err(|e| e.to_string())?,
        admins: vec![BareJid::new("admin@localhost").map_err(|e| e.to_string())?],
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        rooms: HashMap::new(),
        clients: BTreeMap::new(),
    };
    let mut current: Option<String> = None;
    for line in header.lines() {
        if let Some(name) = line.strip_prefix("[Client] ") {
            current = Some(name.trim().to_owned());
        } else if let (Some(name), Some(jid)) = (&current, line.trim().strip_prefix("jid: ")) {
            let jid = jid.trim();
            let full = if jid.contains('/') {
                jid.to_owned()
            } else {
                format!("{jid}/res{}", world.clients.len())
            };
            let bare = full.split('/').next().unwrap_or_default().to_lowercase();
            let full = format!(
                "{bare}/{}",
                full.split_once('/').map(|x| x.1).unwrap_or_default()
            );
            world.clients.insert(
                name.clone(),
                Client {
                    full,
                    bare,
                    connected: false,
                    queue: VecDeque::new(),
                },
            );
        }
    }
    // Actions: an unindented line, then its tab-indented stanza.
    let mut actions: Vec<(String, String)> = Vec::new();
    for line in body.lines().skip(1) {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') || line.starts_with(' ') {
            if let Some(last) = actions.last_mut() {
                last.1.push_str(line);
                last.1.push('\n');
            }
        } else {
            actions.push((line.trim().to_owned(), String::new()));
        }
    }
    for (n, (action, xml)) in actions.iter().enumerate() {
        let (name, verb) = world
            .clients
            .keys()
            .filter(|k| action.starts_with(&format!("{k} ")))
            .max_by_key(|k| k.len())
            .map(|k| (k.clone(), action[k.len() + 1..].to_owned()))
            .ok_or_else(|| format!("action {n}: no client in {action:?}"))?;
        let mut xml = xml.clone();
        for (cname, c) in &world.clients {
            xml = xml
                .replace(&format!("${{{cname}'s full JID}}"), &c.full)
                .replace(&format!("${{{cname}'s JID}}"), &c.bare);
        }
        let parse = |xml: &str| -> Result<Element, String> {
            let wrapped = format!("<w xmlns='{NS}' xmlns:scansion='{SCANSION}'>{xml}</w>");
            let w: Element = wrapped
                .parse()
                .map_err(|e| format!("action {n}: {e}: {xml}"))?;
            w.children()
                .next()
                .cloned()
                .ok_or_else(|| format!("action {n}: no stanza"))
        };
        match verb.as_str() {
            "connects" => {
                if let Some(c) = world.clients.get_mut(&name) {
                    c.connected = true;
                }
            }
            "disconnects" => world.disconnect(&name)?,
            "sends:" => {
                let stanza = parse(&xml)?;
                world.send(&name, stanza)?;
            }
            "receives:" => {
                let expected = parse(&xml)?;
                let client = world.clients.get_mut(&name).ok_or("client")?;
                let mut skipped = Vec::new();
                loop {
                    let Some(got) = client.queue.pop_front() else {
                        return Err(format!(
                            "action {n} ({action}): expected {}\nnot received; skipped:\n{}",
                            String::from(&expected),
                            skipped.join("\n")
                        ));
                    };
                    if matches(&expected, &got) {
                        break;
                    }
                    skipped.push(String::from(&got));
                }
            }
            "receives: nothing" => {
                let client = &world.clients[&name];
                if let Some(s) = client.queue.front() {
                    return Err(format!(
                        "action {n}: expected nothing, got {}",
                        String::from(s)
                    ));
                }
            }
            other => return Err(format!("action {n}: unknown verb {other:?}")),
        }
    }
    Ok(())
}

#[test]
fn prosody_muc_scripts() {
    let dir = scripts_dir();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the scripts belong beside the repository)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".scs") && (name.starts_with("muc_") || name.starts_with("issue"))
        })
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 10,
        "only {} scripts in {}",
        scripts.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    for s in &scripts {
        if let Err(e) = run(s) {
            failures.push(format!("{}: {e}", s.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_matcher_is_not_too_loose() {
    let el = |s: &str| -> Element {
        format!("<w xmlns='{NS}' xmlns:scansion='{SCANSION}'>{s}</w>")
            .parse::<Element>()
            .expect("xml")
            .children()
            .next()
            .cloned()
            .expect("child")
    };
    let actual = el(
        "<presence from='r@c/n'><x xmlns='http://jabber.org/protocol/muc#user'><status code='201'/><item affiliation='owner' role='moderator'/><status code='110'/></x><show>away</show></presence>",
    );
    assert!(matches(&el("<presence from='r@c/n'/>"), &actual));
    assert!(matches(
        &el("<presence from='{scansion:any}'><show>away</show></presence>"),
        &actual
    ));
    assert!(!matches(&el("<presence from='r@c/m'/>"), &actual));
    assert!(!matches(
        &el("<presence from='r@c/n'><show>dnd</show></presence>"),
        &actual
    ));
    // Payloads are strict: every status must be expected.
    assert!(!matches(
        &el(
            "<presence><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/><status code='110'/></x></presence>"
        ),
        &actual
    ));
    assert!(matches(
        &el(
            "<presence><x xmlns='http://jabber.org/protocol/muc#user' scansion:strict='false'><item affiliation='owner' role='moderator'/></x></presence>"
        ),
        &actual
    ));
}
