//! Roles (XEP-0045 §5.1): an occupant's standing while in the room.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An occupant's role, lowest first. `None` means "not in the room".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not an occupant (kicked, left, or may not enter).
    None,
    /// May be present but not speak in a moderated room.
    Visitor,
    /// May speak.
    Participant,
    /// May kick, grant and revoke voice.
    Moderator,
}

impl Role {
    /// The protocol name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Visitor => "visitor",
            Self::Participant => "participant",
            Self::Moderator => "moderator",
        }
    }

    /// Parses a protocol name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "visitor" => Self::Visitor,
            "participant" => Self::Participant,
            "moderator" => Self::Moderator,
            _ => return None,
        })
    }

    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [
        Role::None,
        Role::Visitor,
        Role::Participant,
        Role::Moderator,
    ];
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_by_rank() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(Role::Visitor < Role::Participant);
        assert_eq!(Role::parse("king"), None);
    }
}
