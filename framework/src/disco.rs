//! XEP-0030 service discovery, assembled from what plugins declare.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use xmpp_parsers::disco::{
    DiscoInfoQuery, DiscoInfoResult, DiscoItemsQuery, DiscoItemsResult, Identity,
};
use xmpp_parsers::ns;

use crate::Context;
use crate::error::HandlerError;
use crate::plugin::{Disco, IqRequest, IqResult, IqRoute, ItemsQuery, Plugin};

/// Answers disco#info and disco#items for every address of the component.
///
/// - The component's JID without a node: the union of every plugin's
///   [`Plugin::disco`] (identities, features, XEP-0128 forms).
/// - Any other address, or a node: the first plugin whose
///   [`Plugin::disco_info`] knows it, else `item-not-found`.
/// - disco#items: the items all plugins list for that address and node.
pub struct DiscoPlugin {
    identity: (String, String, String),
    others: OnceLock<Vec<Arc<dyn Plugin>>>,
}

impl DiscoPlugin {
    /// `identity` is used when no plugin declares one (category, type,
    /// name), e.g. `("component", "generic", "satellite")`.
    pub(crate) fn new(identity: (String, String, String)) -> Self {
        Self {
            identity,
            others: OnceLock::new(),
        }
    }

    pub(crate) fn set_plugins(&self, plugins: Vec<Arc<dyn Plugin>>) {
        let _ = self.others.set(plugins);
    }

    fn others(&self) -> &[Arc<dyn Plugin>] {
        self.others.get().map(Vec::as_slice).unwrap_or(&[])
    }

    fn own_info(&self) -> DiscoInfoResult {
        let mut all = self.disco();
        for plugin in self.others() {
            let d = plugin.disco();
            all.identities.extend(d.identities);
            all.features.extend(d.features);
            all.forms.extend(d.forms);
        }
        let mut identities: Vec<Identity> = Vec::new();
        for identity in all.identities {
            if !identities.contains(&identity) {
                identities.push(identity);
            }
        }
        if identities.is_empty() {
            let (category, type_, name) = &self.identity;
            identities.push(Identity::new(category, type_, "en", name));
        }
        DiscoInfoResult {
            node: None,
            identities,
            features: all.features.into_iter().collect(),
            extensions: all.forms,
        }
    }
}

#[async_trait]
impl Plugin for DiscoPlugin {
    fn name(&self) -> &'static str {
        "disco"
    }

    fn disco(&self) -> Disco {
        Disco::default()
            .feature(ns::DISCO_INFO)
            .feature(ns::DISCO_ITEMS)
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::get(ns::DISCO_INFO, "query"),
            IqRoute::get(ns::DISCO_ITEMS, "query"),
        ]
    }

    async fn handle_iq(&self, cx: &Context, iq: IqRequest) -> IqResult {
        if iq.payload.is("query", ns::DISCO_INFO) {
            let query: DiscoInfoQuery = iq.parse()?;
            if iq.is_to_domain() && query.node.is_none() {
                return Ok(Some(self.own_info().into()));
            }
            for plugin in self.others() {
                if let Some(mut info) = plugin
                    .disco_info(cx, &iq.from, &iq.to, query.node.as_deref())
                    .await
                {
                    info.node = query.node;
                    return Ok(Some(info.into()));
                }
            }
            return Err(HandlerError::item_not_found());
        }
        let query: DiscoItemsQuery = iq.parse()?;
        let request = ItemsQuery {
            from: iq.from,
            to: iq.to,
            node: query.node,
            rsm: query.rsm,
        };
        let mut items = Vec::new();
        let mut rsm = None;
        for plugin in self.others() {
            let listed = plugin.disco_items(cx, &request).await;
            items.extend(listed.items);
            rsm = rsm.or(listed.rsm);
        }
        Ok(Some(
            DiscoItemsResult {
                node: request.node,
                items,
                rsm,
            }
            .into(),
        ))
    }
}
