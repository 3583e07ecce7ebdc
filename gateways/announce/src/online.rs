//! Who is online: every available resource of every user, as presences
//! tell (the server's privileged presence stream, or subscribers').

use std::collections::{BTreeMap, BTreeSet};

use satellite::jid::{BareJid, FullJid};

/// The online users and their available resources.
#[derive(Debug, Default)]
pub struct Online {
    users: BTreeMap<BareJid, BTreeSet<String>>,
}

/// What a presence changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The user's first resource came online: a login.
    LoggedIn,
    /// Another resource, or the same one again.
    Updated,
    /// The user's last resource left.
    LoggedOut,
    /// Nothing (a resource that was not online left).
    Nothing,
}

impl Online {
    /// An available presence from `jid`.
    pub fn available(&mut self, jid: &FullJid) -> Change {
        let resources = self.users.entry(jid.to_bare()).or_default();
        let first = resources.is_empty();
        resources.insert(jid.resource().as_str().to_owned());
        if first {
            Change::LoggedIn
        } else {
            Change::Updated
        }
    }

    /// An unavailable presence from `jid`.
    pub fn unavailable(&mut self, jid: &FullJid) -> Change {
        let bare = jid.to_bare();
        let Some(resources) = self.users.get_mut(&bare) else {
            return Change::Nothing;
        };
        if !resources.remove(jid.resource().as_str()) {
            return Change::Nothing;
        }
        if resources.is_empty() {
            self.users.remove(&bare);
            Change::LoggedOut
        } else {
            Change::Updated
        }
    }

    /// An unavailable presence from a bare JID: every resource left.
    pub fn gone(&mut self, jid: &BareJid) {
        self.users.remove(jid);
    }

    /// Forgets everyone (a new connection re-announces who is online).
    pub fn clear(&mut self) {
        self.users.clear();
    }

    /// Whether `jid` has a resource online.
    pub fn is_online(&self, jid: &BareJid) -> bool {
        self.users.contains_key(jid)
    }

    /// Every online resource, by user.
    pub fn snapshot(&self) -> Vec<(BareJid, Vec<FullJid>)> {
        self.users
            .iter()
            .map(|(bare, resources)| {
                let full = resources
                    .iter()
                    .filter_map(|r| FullJid::new(&format!("{bare}/{r}")).ok())
                    .collect();
                (bare.clone(), full)
            })
            .collect()
    }

    /// Users online.
    pub fn users(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> FullJid {
        FullJid::new(s).expect("jid")
    }

    #[test]
    fn logins_and_logouts_follow_the_first_and_last_resource() {
        let mut online = Online::default();
        assert_eq!(online.available(&full("a@x/1")), Change::LoggedIn);
        assert_eq!(online.available(&full("a@x/2")), Change::Updated);
        assert_eq!(online.available(&full("a@x/2")), Change::Updated);
        assert_eq!(online.available(&full("b@x/1")), Change::LoggedIn);
        let snapshot = online.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot[0].1.len(), 2);
        assert_eq!(online.unavailable(&full("a@x/1")), Change::Updated);
        assert_eq!(online.unavailable(&full("a@x/3")), Change::Nothing);
        assert_eq!(online.unavailable(&full("a@x/2")), Change::LoggedOut);
        assert!(!online.is_online(&full("a@x/1").to_bare()));
        assert_eq!(online.users(), 1);
        online.clear();
        assert_eq!(online.users(), 0);
    }
}
