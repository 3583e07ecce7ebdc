//! How fast the engine turns one groupchat message into its deliveries
//! (the hot path), without any I/O. Not a timed test: run with
//! `cargo test --release -p satellite-muc --test fanout -- --ignored --nocapture`.

use std::time::{Duration, Instant, SystemTime};

use satellite::Element;
use satellite::jid::BareJid;
use satellite_muc::room::{Env, Room};
use satellite_muc::settings::Settings;

fn stanza(s: String) -> Element {
    s.parse().expect("xml")
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture in release"]
fn groupchat_fanout_deliveries_per_second() {
    let service = BareJid::new("conference.localhost").expect("jid");
    let settings = Settings::default();
    let env = Env {
        service: &service,
        admins: &[],
        settings: &settings,
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let room_jid = BareJid::new("bench@conference.localhost").expect("jid");
    let mut room = Room::new(&env, &room_jid);
    let occupants = 100;
    for i in 0..occupants {
        let p = stanza(format!(
            "<presence xmlns='jabber:component:accept' from='user{i}@localhost/r' to='bench@conference.localhost/nick{i}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        room.handle_presence(&env, &p);
        if i == 0 {
            let form = satellite::IqRequest {
                from: "user0@localhost/r".parse().expect("jid"),
                to: "bench@conference.localhost".parse().expect("jid"),
                id: "c".into(),
                type_: satellite::IqType::Set,
                payload: stanza("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>".into()),
            };
            room.handle_iq(&env, &form);
        }
    }
    assert_eq!(room.occupants().len(), occupants);
    let messages = 2_000;
    let start = Instant::now();
    let mut deliveries = 0;
    for i in 0..messages {
        let m = stanza(format!(
            "<message xmlns='jabber:component:accept' type='groupchat' id='m{i}' from='user{}@localhost/r' to='bench@conference.localhost'><body>message number {i} with a little text in it</body></message>",
            i % occupants
        ));
        deliveries += room.handle_message(&env, &m).stanzas.len();
    }
    let elapsed = start.elapsed();
    assert_eq!(deliveries, messages * occupants);
    println!(
        "{messages} messages to {occupants} occupants: {deliveries} deliveries in {elapsed:?}, {:.0} deliveries/s",
        deliveries as f64 / elapsed.as_secs_f64()
    );
}
