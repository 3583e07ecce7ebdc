//! The echo gateway: replies to every chat or normal message with its own
//! text, and offers two ad-hoc commands (a stats report and a form that
//! sets a prefix for replies). Ping, version and disco come from the
//! framework.
//!
//! Run it standalone with (needs a server with `Component "echo.localhost"`):
//!
//! ```text
//! cargo run -p satellite-echo -- -c examples/echo/echo.toml
//! ```
//!
//! The `satellite` binary runs it for `service = "echo"`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use satellite::adhoc::{AdhocCommand, CommandSession, Step};
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field, FieldType};
use satellite::xmpp::message::{Lang, Message, MessageType};
use satellite::{Context, Disco, Flow, HandlerError, Plugin, async_trait};

/// Echo's settings (`[component.settings]`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoSettings {
    /// Text put in front of every reply (default: none).
    #[serde(default)]
    pub prefix: String,
}

/// The echo plugin.
#[derive(Clone)]
pub struct Echo {
    state: Arc<State>,
}

struct State {
    prefix: RwLock<String>,
    echoed: AtomicU64,
}

impl Echo {
    /// An echo with the given settings.
    pub fn new(settings: EchoSettings) -> Self {
        Self {
            state: Arc::new(State {
                prefix: RwLock::new(settings.prefix),
                echoed: AtomicU64::new(0),
            }),
        }
    }

    fn prefix(&self) -> String {
        self.state
            .prefix
            .read()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Plugin for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn disco(&self) -> Disco {
        Disco::default().identity("component", "generic", "Echo")
    }

    fn commands(&self) -> Vec<Arc<dyn AdhocCommand>> {
        vec![
            Arc::new(Stats(self.clone())),
            Arc::new(SetPrefix(self.clone())),
        ]
    }

    async fn handle_message(&self, cx: &Context, message: &Message) -> Flow {
        if !matches!(message.type_, MessageType::Chat | MessageType::Normal) {
            // Errors, groupchat and headlines are not echoed (no loops).
            return Flow::Handled;
        }
        let (Some(from), Some(body)) = (&message.from, message.bodies.values().next()) else {
            return Flow::Continue;
        };
        let mut reply = Message::new_with_type(message.type_.clone(), Some(from.clone()));
        reply.from = message.to.clone();
        reply.id = message.id.clone();
        reply.thread = message.thread.clone();
        reply
            .bodies
            .insert(Lang::default(), format!("{}{body}", self.prefix()));
        if cx.send(reply).await.is_ok() {
            self.state.echoed.fetch_add(1, Ordering::Relaxed);
        }
        Flow::Handled
    }
}

/// `stats`: how many messages were echoed.
struct Stats(Echo);

#[async_trait]
impl AdhocCommand for Stats {
    fn node(&self) -> &str {
        "stats"
    }
    fn name(&self) -> &str {
        "Echo statistics"
    }
    async fn execute(&self, _cx: &Context, _s: &mut CommandSession) -> Result<Step, HandlerError> {
        let echoed = self.0.state.echoed.load(Ordering::Relaxed);
        let form = DataForm::new(
            DataFormType::Result_,
            "urn:satellite:echo:stats",
            vec![Field::text_single("echoed", &echoed.to_string())],
        );
        Ok(Step::done_with(form))
    }
}

/// `prefix`: a form that sets the reply prefix.
struct SetPrefix(Echo);

#[async_trait]
impl AdhocCommand for SetPrefix {
    fn node(&self) -> &str {
        "prefix"
    }
    fn name(&self) -> &str {
        "Set the reply prefix"
    }
    async fn execute(&self, _cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
        if s.stage == 0 {
            let mut field = Field::new("prefix", FieldType::TextSingle);
            field.label = Some("Prefix".into());
            field.values = vec![self.0.prefix()];
            let form = DataForm::new(DataFormType::Form, "urn:satellite:echo:prefix", vec![field]);
            return Ok(Step::form(form));
        }
        let prefix = s.value("prefix").unwrap_or_default().to_owned();
        if prefix.len() > 64 {
            return Err(HandlerError::not_acceptable(
                "the prefix is limited to 64 bytes",
            ));
        }
        if let Ok(mut p) = self.0.state.prefix.write() {
            p.clone_from(&prefix);
        }
        Ok(Step::done().note_info(format!("Replies now start with {prefix:?}")))
    }
}
