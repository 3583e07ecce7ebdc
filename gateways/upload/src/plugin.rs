//! The XMPP side: disco (identity, feature, `max-file-size` form), slot
//! requests, and starting the HTTP server and the sweep.

use std::sync::Arc;

use satellite::adhoc::AdhocCommand;
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field};
use satellite::xmpp::http_upload::SlotResult;
use satellite::{
    BoxError, ComponentConfig, Context, Disco, IqRequest, IqResult, IqRoute, Plugin, Scope,
    async_trait,
};

use crate::commands::{Delete, Stats};
use crate::config::Settings;
use crate::request::{NS, SlotRequest};
use crate::service::{Service, Started, started};

/// The upload plugin: one per component.
pub struct Upload {
    settings: Settings,
    /// Opened by `on_start`; shared with the admin commands.
    service: Started,
}

impl Upload {
    /// An upload service with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            service: Started::default(),
        }
    }

    /// An upload service configured by a component's `[component.settings]`.
    pub fn from_config(config: &ComponentConfig) -> Result<Self, BoxError> {
        Ok(Self::new(Settings::load(config)?))
    }
}

#[async_trait]
impl Plugin for Upload {
    fn name(&self) -> &'static str {
        "upload"
    }

    fn disco(&self) -> Disco {
        let max = Field::text_single("max-file-size", &self.settings.max_file_size.to_string());
        Disco::default()
            .identity("store", "file", "HTTP File Upload")
            .feature(NS)
            .form(DataForm::new(DataFormType::Result_, NS, vec![max]))
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::get(NS, "request").scope(Scope::Domain)]
    }

    fn commands(&self) -> Vec<Arc<dyn AdhocCommand>> {
        vec![
            Arc::new(Stats(Arc::clone(&self.service))),
            Arc::new(Delete(Arc::clone(&self.service))),
        ]
    }

    async fn on_start(&self, cx: &Context) -> Result<(), BoxError> {
        let service = Service::open(self.settings.clone())?;
        let tls = match &self.settings.tls {
            Some(files) => Some(crate::http::tls_acceptor(files)?),
            None => None,
        };
        let listen = self.settings.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        if let Err(e) = crate::sweep::sweep(&service).await {
            tracing::error!(error = %e, "upload: first sweep failed");
        }
        tracing::info!(
            %listen,
            public_url = %self.settings.public_url,
            storage = %self.settings.storage_dir.display(),
            tls = tls.is_some(),
            "upload: HTTP server up"
        );
        cx.spawn(crate::http::serve(
            listener,
            Arc::clone(&service),
            tls,
            cx.shutdown_token(),
        ));
        cx.spawn(crate::sweep::run(Arc::clone(&service), cx.shutdown_token()));
        let _ = self.service.set(service);
        Ok(())
    }

    async fn handle_iq(&self, _cx: &Context, iq: IqRequest) -> IqResult {
        let service = started(&self.service)?;
        let request = SlotRequest::parse(&iq.payload)?;
        let slot = crate::slot::issue(service, &iq.from, request).await?;
        Ok(Some(SlotResult::from(slot).into()))
    }
}
