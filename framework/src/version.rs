//! XEP-0092 software version.

use async_trait::async_trait;
use xmpp_parsers::ns;
use xmpp_parsers::version::VersionResult;

use crate::Context;
use crate::plugin::{Disco, IqRequest, IqResult, IqRoute, Plugin, Scope};

/// Answers `jabber:iq:version` on the component's JID. The OS is not
/// disclosed.
pub struct Version {
    name: String,
    version: String,
}

impl Version {
    /// Reports `name` and `version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }
}

#[async_trait]
impl Plugin for Version {
    fn name(&self) -> &'static str {
        "version"
    }

    fn disco(&self) -> Disco {
        Disco::default().feature(ns::VERSION)
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::get(ns::VERSION, "query").scope(Scope::Domain)]
    }

    async fn handle_iq(&self, _cx: &Context, _iq: IqRequest) -> IqResult {
        Ok(Some(
            VersionResult {
                name: self.name.clone(),
                version: self.version.clone(),
                os: None,
            }
            .into(),
        ))
    }
}
