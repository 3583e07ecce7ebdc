//! A private Prosody set up for MUC tests and benchmarks: satellite's MUC
//! as an external component (`Component "rooms.localhost"`), Prosody's own
//! mod_muc (`Component "muc.localhost" "muc"`), or both on one server, so
//! that a benchmark runs the same work against each in one run.
//!
//! ```no_run
//! # async fn demo() {
//! use satellite_harness::muc::{MucSetup, ProsodyMuc, MucArchive, PROSODY_MUC};
//! let prosody = MucSetup::satellite("s3cret")
//!     .with_prosody_muc(ProsodyMuc::new(PROSODY_MUC).archive(MucArchive::Sqlite))
//!     .user("alice", "pw")
//!     .start()
//!     .await;
//! # }
//! ```

use std::fmt::Write as _;

use crate::Prosody;
use crate::prosody::{DEFAULT_MODULES, lua_str};
use crate::scansion::Script;

/// Where the tests attach satellite's MUC.
pub const SATELLITE_MUC: &str = "rooms.localhost";
/// Where the tests load Prosody's own mod_muc.
pub const PROSODY_MUC: &str = "muc.localhost";
/// The MUC domain Prosody's scansion scripts address.
pub const SCRIPTS_MUC: &str = "conference.localhost";

/// Modules of the config Prosody's scansion scripts were recorded with
/// (`shared/conformance/prosody-scansion/prosody.cfg.lua`) that Prosody 0.12
/// has and that change what a MUC test sees: `vcard_legacy` adds the
/// `vcard-temp:x:update` element the scripts expect in every presence.
pub const SCRIPT_MODULES: &[&str] = &[
    "carbons",
    "pep",
    "private",
    "blocklist",
    "vcard4",
    "vcard_legacy",
    "register",
    "mam",
    "server_contact_info",
    "lastactivity",
];

/// Where Prosody's own MUC keeps rooms and its archive (mod_muc_mam).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MucArchive {
    /// No mod_muc_mam; rooms in the server's default storage.
    None,
    /// mod_muc_mam, everything in memory (`storage = "memory"`, as the
    /// scansion scripts' config).
    Memory,
    /// mod_muc_mam on Prosody's default file storage (`internal`), slow
    /// on large archives.
    Internal,
    /// mod_muc_mam on SQLite (`storage = "sql"`), what serious Prosody
    /// deployments use; needs Debian's `lua-dbi-sqlite3`.
    Sqlite,
}

/// Prosody's own mod_muc as a `Component "<domain>" "muc"` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProsodyMuc {
    /// The component's domain.
    pub domain: String,
    /// Archive and storage.
    pub archive: MucArchive,
    /// Lua appended to the component section (options such as
    /// `muc_room_locking = false`).
    pub extra_lua: String,
}

impl ProsodyMuc {
    /// mod_muc at `domain`, without an archive.
    pub fn new(domain: &str) -> ProsodyMuc {
        ProsodyMuc {
            domain: domain.to_owned(),
            archive: MucArchive::None,
            extra_lua: String::new(),
        }
    }

    /// With this archive and storage.
    pub fn archive(mut self, archive: MucArchive) -> ProsodyMuc {
        self.archive = archive;
        self
    }

    /// With more Lua in the component section.
    pub fn extra_lua(mut self, lua: &str) -> ProsodyMuc {
        self.extra_lua.push_str(lua);
        self.extra_lua.push('\n');
        self
    }

    /// The component section.
    pub fn lua(&self) -> String {
        let mut out = format!("Component {} \"muc\"\n", lua_str(&self.domain));
        let storage = match self.archive {
            MucArchive::None => None,
            MucArchive::Memory => Some("\tstorage = \"memory\"\n"),
            MucArchive::Internal => Some("\tstorage = \"internal\"\n"),
            MucArchive::Sqlite => Some(
                "\tstorage = \"sql\"\n\tsql = { driver = \"SQLite3\", database = \"muc.sqlite\" }\n",
            ),
        };
        if let Some(storage) = storage {
            out.push_str(storage);
            out.push_str("\tmodules_enabled = { \"muc_mam\" }\n");
            out.push_str("\tmuc_log_by_default = true\n");
        }
        for line in self.extra_lua.lines() {
            let _ = writeln!(out, "\t{line}");
        }
        out
    }
}

/// What a MUC test's Prosody runs; [`MucSetup::start`] starts it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucSetup {
    /// satellite's MUC: (domain, component secret).
    pub satellite: Option<(String, String)>,
    /// Prosody's own MUC.
    pub prosody_muc: Option<ProsodyMuc>,
    /// Accounts on `localhost`: (localpart, password).
    pub users: Vec<(String, String)>,
    /// Server admins (bare JIDs): Prosody's MUC lets them destroy any room.
    pub admins: Vec<String>,
    /// Enable [`SCRIPT_MODULES`] as well as the harness's default modules.
    pub script_modules: bool,
    /// Lua for the global section.
    pub extra_global_lua: String,
}

impl MucSetup {
    /// satellite's MUC at [`SATELLITE_MUC`] with this component secret.
    pub fn satellite(secret: &str) -> MucSetup {
        MucSetup::default().with_satellite(SATELLITE_MUC, secret)
    }

    /// Prosody's own MUC only.
    pub fn prosody(muc: ProsodyMuc) -> MucSetup {
        MucSetup::default().with_prosody_muc(muc)
    }

    /// For one of Prosody's scansion scripts: the script's accounts, its
    /// `admin@localhost`, its modules.
    pub fn for_script(script: &Script) -> MucSetup {
        let mut setup = MucSetup {
            script_modules: true,
            admins: vec!["admin@localhost".to_owned()],
            ..MucSetup::default()
        };
        setup.users = script.accounts();
        setup
    }

    /// Also satellite's MUC at `domain`.
    pub fn with_satellite(mut self, domain: &str, secret: &str) -> MucSetup {
        self.satellite = Some((domain.to_owned(), secret.to_owned()));
        self
    }

    /// Also Prosody's own MUC.
    pub fn with_prosody_muc(mut self, muc: ProsodyMuc) -> MucSetup {
        self.prosody_muc = Some(muc);
        self
    }

    /// One more account.
    pub fn user(mut self, localpart: &str, password: &str) -> MucSetup {
        self.users.push((localpart.to_owned(), password.to_owned()));
        self
    }

    /// The global section's Lua for this setup.
    pub fn global_lua(&self) -> String {
        let mut lua = String::new();
        if self.script_modules {
            let extra: Vec<&str> = SCRIPT_MODULES
                .iter()
                .copied()
                .filter(|m| !DEFAULT_MODULES.contains(m))
                .collect();
            lua.push_str(&Prosody::modules_enabled_lua(&extra));
        }
        if !self.admins.is_empty() {
            let admins: Vec<String> = self.admins.iter().map(|a| lua_str(a)).collect();
            let _ = writeln!(lua, "admins = {{ {} }}", admins.join(", "));
        }
        lua.push_str(&self.extra_global_lua);
        lua
    }

    /// Starts the private Prosody. Panics with a hint when Prosody's MUC
    /// archive on SQLite is asked for without `lua-dbi-sqlite3`.
    pub async fn start(&self) -> Prosody {
        if self
            .prosody_muc
            .as_ref()
            .is_some_and(|m| m.archive == MucArchive::Sqlite)
        {
            require_lua_dbi_sqlite();
        }
        let components: Vec<(&str, &str)> = self
            .satellite
            .iter()
            .map(|(d, s)| (d.as_str(), s.as_str()))
            .collect();
        let users: Vec<(&str, &str)> = self
            .users
            .iter()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .collect();
        let trailing = self
            .prosody_muc
            .as_ref()
            .map(ProsodyMuc::lua)
            .unwrap_or_default();
        Prosody::start_with(&components, &users, &self.global_lua(), &trailing).await
    }
}

/// Panics unless LuaDBI's SQLite driver is installed (Debian
/// `lua-dbi-sqlite3`), which Prosody's `storage = "sql"` needs.
fn require_lua_dbi_sqlite() {
    // Debian puts the driver under /usr/lib/<multiarch>/lua/<version>/dbd/.
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|arch| {
            ["5.4", "5.3", "5.2", "5.1"]
                .iter()
                .any(|v| arch.path().join(format!("lua/{v}/dbd/sqlite3.so")).exists())
        });
    if !found {
        panic!(
            "Prosody's MUC archive on SQLite needs LuaDBI's SQLite driver: apt-get install lua-dbi-sqlite3"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prosody_muc_sections() {
        let lua = ProsodyMuc::new(PROSODY_MUC).lua();
        assert_eq!(lua, "Component \"muc.localhost\" \"muc\"\n");
        let lua = ProsodyMuc::new(SCRIPTS_MUC)
            .archive(MucArchive::Sqlite)
            .extra_lua("muc_room_locking = false")
            .lua();
        assert!(lua.contains("storage = \"sql\""), "{lua}");
        assert!(lua.contains("modules_enabled = { \"muc_mam\" }"), "{lua}");
        assert!(lua.ends_with("\tmuc_room_locking = false\n"), "{lua}");
    }

    #[test]
    fn setups() {
        let setup = MucSetup::satellite("pw").with_prosody_muc(ProsodyMuc::new(PROSODY_MUC));
        assert_eq!(
            setup.satellite,
            Some((SATELLITE_MUC.to_owned(), "pw".to_owned()))
        );
        assert_eq!(setup.global_lua(), "");
        let script = crate::scansion::parse(
            "[Client] A\n\tjid: a@localhost/x\n\tpassword: p\n[Client] A2\n\tjid: a@localhost/y\n\tpassword: p\n-----\nA connects\n",
        )
        .expect("parses");
        let setup = MucSetup::for_script(&script);
        assert_eq!(setup.users, [("a".to_owned(), "p".to_owned())]);
        let lua = setup.global_lua();
        assert!(lua.contains("\"vcard_legacy\""), "{lua}");
        assert!(lua.contains("admins = { \"admin@localhost\" }"), "{lua}");
    }
}
