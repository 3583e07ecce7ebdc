//! XEP-0199 ping: answered by the component itself.

use async_trait::async_trait;
use xmpp_parsers::ns;

use crate::Context;
use crate::plugin::{Disco, IqRequest, IqResult, IqRoute, Plugin, Scope};

/// Answers `<ping/>` addressed to the component's JID.
///
/// Scoped to the component's own JID, so a plugin with addressable
/// entities (a MUC's XEP-0410 self-ping) can own pings to those.
pub struct Ping;

#[async_trait]
impl Plugin for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn disco(&self) -> Disco {
        Disco::default().feature(ns::PING)
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::get(ns::PING, "ping").scope(Scope::Domain)]
    }

    async fn handle_iq(&self, _cx: &Context, _iq: IqRequest) -> IqResult {
        Ok(None)
    }
}
