//! Affiliations (XEP-0045 §5.2): a bare JID's long-lived standing in a room.

use std::fmt;

/// A bare JID's affiliation with a room, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    /// Banned.
    Outcast,
    /// No affiliation.
    None,
    /// A member.
    Member,
    /// An admin.
    Admin,
    /// An owner.
    Owner,
}

impl Affiliation {
    /// The protocol name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outcast => "outcast",
            Self::None => "none",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Parses a protocol name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "outcast" => Self::Outcast,
            "none" => Self::None,
            "member" => Self::Member,
            "admin" => Self::Admin,
            "owner" => Self::Owner,
            _ => return None,
        })
    }
}

impl fmt::Display for Affiliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_by_rank() {
        for a in [
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ] {
            assert_eq!(Affiliation::parse(a.as_str()), Some(a));
        }
        assert!(Affiliation::Outcast < Affiliation::None);
        assert!(Affiliation::Admin < Affiliation::Owner);
        assert_eq!(Affiliation::parse("king"), None);
    }
}
