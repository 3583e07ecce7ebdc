//! Calibrates the scansion runner and the MUC setups: Prosody's own MUC
//! (mod_muc of the installed Prosody 0.12, the version the scripts were
//! recorded with) runs each of its MUC scripts through the harness, with
//! scansion's matching. What passes here is what satellite's MUC will be
//! held to.

use std::time::Duration;

use satellite_harness::muc::{MucArchive, MucSetup, ProsodyMuc, SCRIPTS_MUC};
use satellite_harness::scansion::{self, Matching, RunOptions};

const T: Duration = Duration::from_secs(10);

async fn passes(name: &str, matching: Matching) {
    let script = scansion::load(name);
    let prosody = MucSetup::for_script(&script)
        .with_prosody_muc(
            ProsodyMuc::new(SCRIPTS_MUC)
                .archive(MucArchive::Memory)
                .extra_lua("admins = { \"Admin@localhost\" }"),
        )
        .start()
        .await;
    let options = RunOptions {
        matching,
        ..RunOptions::scansion(T)
    };
    scansion::run_with(&script, prosody.c2s_port, options)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    drop(prosody);
}

macro_rules! scripts {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                passes($file, Matching::Scansion).await;
            }
        )*

        /// Every MUC script of the conformance directory has a test here.
        #[test]
        fn every_script_is_run() {
            let listed = [$($file),*];
            for name in scansion::muc_scripts() {
                assert!(listed.contains(&name.as_str()), "{name} has no test");
            }
        }
    };
}

scripts! {
    issue1224 => "issue1224.scs",
    issue505 => "issue505.scs",
    issue978_multi => "issue978-multi.scs",
    issue978 => "issue978.scs",
    muc_affiliation_notify => "muc_affiliation_notify.scs",
    muc_create_destroy => "muc_create_destroy.scs",
    muc_mediated_invite => "muc_mediated_invite.scs",
    muc_members_only_change => "muc_members_only_change.scs",
    muc_members_only_deregister => "muc_members_only_deregister.scs",
    muc_nickname_change => "muc_nickname_change.scs",
    muc_nickname_robotface => "muc_nickname_robotface.scs",
    muc_password => "muc_password.scs",
    muc_presence_probe => "muc_presence_probe.scs",
    muc_register => "muc_register.scs",
    muc_show_offline => "muc_show_offline.scs",
    muc_subject_issue_667 => "muc_subject_issue_667.scs",
    muc_whois_anyone_member => "muc_whois_anyone_member.scs",
}

/// The runner is not vacuous: a wrong expectation fails the script.
#[tokio::test]
#[should_panic(expected = "no matching stanza")]
async fn a_wrong_expectation_fails() {
    let script = scansion::parse(
        "[Client] Romeo\n\tjid: romeo@localhost/r\n\tpassword: password\n\n-----\n\n\
         Romeo connects\n\nRomeo sends:\n\t<presence to='garden@conference.localhost/romeo'>\n\
         \t\t<x xmlns='http://jabber.org/protocol/muc'/>\n\t</presence>\n\n\
         Romeo receives:\n\t<presence from='garden@conference.localhost/romeo'>\n\
         \t\t<x xmlns='http://jabber.org/protocol/muc#user'>\n\
         \t\t\t<status code='201'/>\n\t\t\t<status code='110'/>\n\t\t</x>\n\t</presence>\n",
    )
    .expect("parses");
    let prosody = MucSetup::for_script(&script)
        .with_prosody_muc(ProsodyMuc::new(SCRIPTS_MUC))
        .start()
        .await;
    // Prosody sends an <item/> too, and muc#user is matched exactly.
    let _ = scansion::run_with(
        &script,
        prosody.c2s_port,
        RunOptions::scansion(Duration::from_secs(2)),
    )
    .await;
}

/// satellite's MUC domain and Prosody's own MUC on one server, as a
/// benchmark runs them: the component secret is accepted at
/// rooms.localhost, and mod_muc answers at muc.localhost.
#[tokio::test]
async fn both_mucs_on_one_prosody() {
    use satellite_harness::muc::{PROSODY_MUC, SATELLITE_MUC};
    use satellite_harness::{Client, RawComponent};
    let prosody = MucSetup::satellite("rooms-secret")
        .with_prosody_muc(ProsodyMuc::new(PROSODY_MUC).archive(MucArchive::Internal))
        .user("alice", "pw")
        .start()
        .await;
    let component = RawComponent::connect(prosody.component_port, SATELLITE_MUC, "rooms-secret")
        .await
        .expect("satellite's MUC domain takes the component");
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "pw").await;
    let info = alice
        .iq(&format!(
            "<iq type='get' id='d1' to='{PROSODY_MUC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await;
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap_or_else(|| panic!("{info:?}"));
    assert!(
        query
            .children()
            .any(|c| c.name() == "identity" && c.attr("category") == Some("conference")),
        "{info:?}"
    );
    assert!(
        query
            .children()
            .any(|c| c.name() == "feature" && c.attr("var") == Some("urn:xmpp:mam:2")),
        "mod_muc_mam is loaded: {info:?}"
    );
    alice.disconnect().await;
    drop(component);
}

/// Prosody's MUC archive on SQLite (the configuration its benchmark runs
/// against). Needs Debian's lua-dbi-sqlite3; ignored by default.
#[tokio::test]
#[ignore = "needs lua-dbi-sqlite3 (apt-get install lua-dbi-sqlite3)"]
async fn prosody_muc_archive_on_sqlite() {
    use satellite_harness::Client;
    use satellite_harness::muc::PROSODY_MUC;
    let prosody = MucSetup::prosody(ProsodyMuc::new(PROSODY_MUC).archive(MucArchive::Sqlite))
        .user("alice", "pw")
        .start()
        .await;
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "pw").await;
    alice
        .send_raw(&format!(
            "<presence to='sq@{PROSODY_MUC}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
    alice.recv_matching(|e| e.name() == "presence", T).await;
    alice
        .send_raw(&format!(
            "<message to='sq@{PROSODY_MUC}' type='groupchat' id='m1'><body>kept</body></message>"
        ))
        .await;
    alice
        .recv_matching(|e| e.name() == "message" && e.attr("id") == Some("m1"), T)
        .await;
    let fin = alice
        .iq(&format!(
            "<iq type='set' id='q1' to='sq@{PROSODY_MUC}'><query xmlns='urn:xmpp:mam:2' queryid='x'/></iq>"
        ))
        .await;
    assert_eq!(fin.attr("type"), Some("result"), "{fin:?}");
    assert!(
        prosody.dir.join("data/muc.sqlite").exists(),
        "the archive is in SQLite:\n{}",
        prosody.log()
    );
    alice.disconnect().await;
}
