//! The MUC service against a real Prosody with real clients: Prosody's own
//! MUC scansion scripts (the conformance data in
//! `shared/conformance/prosody-scansion/`), replayed against satellite's
//! MUC with scansion's matching, and the flows those scripts leave out.

use std::time::Duration;

use satellite_harness::muc::{MucSetup, SATELLITE_MUC, SCRIPTS_MUC};
use satellite_harness::scansion::{self, RunOptions};

use crate::in_process::InProcess;
use crate::support::Prosody;

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "muc-secret";

/// satellite's MUC in this process, attached to `prosody`, keeping its
/// rooms in `db`.
pub async fn start_muc(prosody: &Prosody, db: &std::path::Path, extra: &str) -> InProcess {
    let config = format!(
        "[[component]]\nservice = \"muc\"\njid = \"{SATELLITE_MUC}\"\nserver = \"127.0.0.1:{}\"\n\
         secret = \"{SECRET}\"\nadmins = [\"admin@localhost\"]\n\n[component.settings]\n\
         database = \"{}\"\n{extra}",
        prosody.component_port,
        db.display(),
    );
    InProcess::start(&config, |c| {
        let settings = satellite_muc::Settings::load(c).expect("muc settings");
        satellite_muc::MucPlugin::new(satellite_muc::Muc::new(c, settings))
    })
    .await
}

async fn passes(name: &str) {
    let mut script = scansion::load(name);
    script.replace_domain(SCRIPTS_MUC, SATELLITE_MUC);
    let prosody = MucSetup::for_script(&script)
        .with_satellite(SATELLITE_MUC, SECRET)
        .start()
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let muc = start_muc(&prosody, &dir.path().join("muc.sqlite"), "").await;
    let result = scansion::run_with(&script, prosody.c2s_port, RunOptions::scansion(T)).await;
    muc.stop().await;
    if let Err(e) = result {
        panic!("{name}: {e}\n--- prosody log ---\n{}", prosody.log());
    }
}

macro_rules! scripts {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                passes($file).await;
            }
        )*

        /// Every MUC script of the conformance directory runs here.
        #[test]
        fn every_muc_script_runs_against_satellite() {
            let listed = [$($file),*];
            for name in scansion::muc_scripts() {
                assert!(listed.contains(&name.as_str()), "{name} has no test");
            }
        }
    };
}

scripts! {
    script_issue1224 => "issue1224.scs",
    script_issue505 => "issue505.scs",
    script_issue978_multi => "issue978-multi.scs",
    script_issue978 => "issue978.scs",
    script_muc_affiliation_notify => "muc_affiliation_notify.scs",
    script_muc_create_destroy => "muc_create_destroy.scs",
    script_muc_mediated_invite => "muc_mediated_invite.scs",
    script_muc_members_only_change => "muc_members_only_change.scs",
    script_muc_members_only_deregister => "muc_members_only_deregister.scs",
    script_muc_nickname_change => "muc_nickname_change.scs",
    script_muc_nickname_robotface => "muc_nickname_robotface.scs",
    script_muc_password => "muc_password.scs",
    script_muc_presence_probe => "muc_presence_probe.scs",
    script_muc_register => "muc_register.scs",
    script_muc_show_offline => "muc_show_offline.scs",
    script_muc_subject_issue_667 => "muc_subject_issue_667.scs",
    script_muc_whois_anyone_member => "muc_whois_anyone_member.scs",
}
