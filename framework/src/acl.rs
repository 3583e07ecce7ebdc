//! Who may use a service: an allow-list of `*`, domains and accounts, as a
//! service's `allow = [...]` setting writes it.
//!
//! The default, [`Acl::parent_domain`], admits the users of the server the
//! component is attached to (`upload.example.org` → `example.org`), which
//! is what Prosody's and ejabberd's built-in modules do for their own
//! host's users.
//!
//! ```
//! use satellite::acl::Acl;
//! use satellite::jid::Jid;
//!
//! let acl = Acl::parse(&["example.org", "ada@example.net"]).expect("valid");
//! assert!(acl.allows(&Jid::new("bob@example.org/phone").unwrap()));
//! assert!(acl.allows(&Jid::new("ada@example.net/laptop").unwrap()));
//! assert!(!acl.allows(&Jid::new("eve@example.net/x").unwrap()));
//! ```

use xmpp_parsers::jid::{BareJid, Jid};

/// One entry of an allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclEntry {
    /// Everyone (`"*"`).
    Anyone,
    /// Every user of a domain (`"example.org"`), and the domain itself.
    Domain(String),
    /// One account (`"user@example.org"`), any resource.
    Account(BareJid),
}

impl AclEntry {
    /// Parses `*`, a domain or `user@domain`; the error says what was
    /// expected.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry == "*" {
            return Ok(Self::Anyone);
        }
        let jid = BareJid::new(entry).map_err(|e| {
            format!("`{entry}` is not a JID ({e}); expected `*`, a domain or `user@domain`")
        })?;
        Ok(match jid.node() {
            None => Self::Domain(jid.domain().as_str().to_owned()),
            Some(_) => Self::Account(jid),
        })
    }

    fn matches(&self, bare: &BareJid) -> bool {
        match self {
            Self::Anyone => true,
            Self::Domain(d) => bare.domain().as_str() == d,
            Self::Account(j) => j == bare,
        }
    }
}

/// An allow-list: a JID is allowed when any entry matches it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// The entries, in the order written.
    pub entries: Vec<AclEntry>,
}

impl Acl {
    /// Parses every entry; the error gives the index of the first bad one
    /// and what was expected, for a config error naming `allow[i]`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, String)> {
        let entries = entries
            .iter()
            .enumerate()
            .map(|(i, e)| AclEntry::parse(e.as_ref()).map_err(|m| (i, m)))
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The users of the component's parent domain: `upload.example.org`
    /// admits `*@example.org` (a single-label JID admits its own domain).
    pub fn parent_domain(component: &BareJid) -> Self {
        Self {
            entries: vec![AclEntry::Domain(parent_domain(component.domain().as_str()))],
        }
    }

    /// Whether `jid` (any resource) may use the service.
    pub fn allows(&self, jid: &Jid) -> bool {
        let bare = jid.to_bare();
        self.entries.iter().any(|e| e.matches(&bare))
    }
}

/// `upload.example.org` → `example.org`; a single label stays as is.
pub fn parent_domain(domain: &str) -> String {
    match domain.split_once('.') {
        Some((_, parent)) if !parent.is_empty() => parent.to_owned(),
        _ => domain.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::new(s).expect("jid")
    }

    #[test]
    fn parent_domain_is_the_default() {
        let acl = Acl::parent_domain(&BareJid::new("upload.example.org").expect("jid"));
        assert!(acl.allows(&jid("ada@example.org/r")));
        assert!(!acl.allows(&jid("ada@upload.example.org/r")));
        assert!(!acl.allows(&jid("ada@evil.org/r")));
        let single = Acl::parent_domain(&BareJid::new("localhost").expect("jid"));
        assert!(single.allows(&jid("ada@localhost/r")));
    }

    #[test]
    fn entries_and_errors() {
        let acl = Acl::parse(&["*"]).expect("valid");
        assert!(acl.allows(&jid("anyone@anywhere/x")));
        let err = Acl::parse(&["example.org", "a@b@c"]).expect_err("bad");
        assert_eq!(err.0, 1);
        assert!(err.1.contains("`a@b@c` is not a JID"), "{}", err.1);
        assert!(Acl::default().entries.is_empty());
        assert!(!Acl::default().allows(&jid("a@b")));
    }
}
