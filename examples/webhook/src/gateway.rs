//! The webhook plugin and its HTTP endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use satellite::jid::Jid;
use satellite::xmpp::message::{Lang, Message, MessageType};
use satellite::xmpp::muc::Muc;
use satellite::xmpp::presence::Presence;
use satellite::{BoxError, ComponentConfig, Context, Plugin, Secret, SendError, async_trait};
use subtle::ConstantTimeEq;

/// Largest accepted request body.
const MAX_BODY: usize = 64 * 1024;

/// `[component.settings]` of the webhook gateway.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Where the HTTP endpoint listens (default `127.0.0.1:8088`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The bearer token, or…
    pub token: Option<String>,
    /// …a file holding it (systemd credential or path).
    pub token_file: Option<PathBuf>,
    /// Default recipient: a JID, or a room when `room = true`.
    pub to: String,
    /// Whether `to` is a MUC room to join (messages go as groupchat).
    #[serde(default)]
    pub room: bool,
    /// Nickname in the room (default `webhook`).
    #[serde(default = "default_nick")]
    pub nick: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8088))
}

fn default_nick() -> String {
    "webhook".to_owned()
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    listen: SocketAddr,
    token: String,
    to: Jid,
    room: bool,
    nick: String,
}

/// Reads and checks the settings of one component.
pub fn load_settings(c: &ComponentConfig) -> Result<Settings, BoxError> {
    let raw: RawSettings = c.settings()?;
    let at = |key: &str| {
        format!(
            "{}: component[{}].settings.{key}",
            c.source.display(),
            c.index
        )
    };
    // Read like every other secret file: a relative path in
    // $CREDENTIALS_DIRECTORY (systemd LoadCredential=) first, then next to
    // the config file.
    let token = Secret::from_pair(&c.source, "token", raw.token, raw.token_file)
        .map_err(|(key, m)| format!("{}: {m}", at(&key)))?
        .ok_or_else(|| {
            format!(
                "{}: missing; expected `token = \"…\"` or `token_file = \"path\"`",
                at("token")
            )
        })?
        .expose()
        .to_owned();
    if token.len() < 16 {
        return Err(format!(
            "{}: expected a token of at least 16 characters",
            at("token")
        )
        .into());
    }
    let to =
        Jid::new(&raw.to).map_err(|e| format!("{}: `{}` is not a JID ({e})", at("to"), raw.to))?;
    Ok(Settings {
        listen: raw.listen,
        token,
        to,
        room: raw.room,
        nick: raw.nick,
    })
}

/// The webhook gateway.
pub struct Webhook {
    settings: Arc<Settings>,
    started: OnceLock<()>,
}

impl Webhook {
    /// A gateway with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
            started: OnceLock::new(),
        }
    }
}

#[async_trait]
impl Plugin for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn on_connected(&self, cx: &Context) -> Result<(), BoxError> {
        if self.settings.room {
            // (Re)join the room after every reconnect.
            let occupant = format!("{}/{}", self.settings.to.to_bare(), self.settings.nick);
            let join = Presence::available()
                .with_to(Jid::new(&occupant)?)
                .with_payloads(vec![Muc::new().into()]);
            cx.send(join).await?;
        }
        if self.started.set(()).is_ok() {
            let listener = tokio::net::TcpListener::bind(self.settings.listen).await?;
            tracing::info!(listen = %self.settings.listen, "webhook endpoint up");
            let app = router(cx.clone(), Arc::clone(&self.settings));
            let stop = cx.shutdown_token();
            cx.spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "webhook endpoint failed");
                }
            });
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHook {
    text: String,
    to: Option<String>,
}

type AppState = (Context, Arc<Settings>);

/// The HTTP side: `POST /` with `Authorization: Bearer <token>`.
pub fn router(cx: Context, settings: Arc<Settings>) -> Router {
    Router::new()
        .route("/", post(hook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state((cx, settings))
}

async fn hook(
    State((cx, settings)): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, &'static str) {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(settings.token.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "bad or missing bearer token\n");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (text, to) = if json {
        match serde_json::from_str::<JsonHook>(&body) {
            Ok(h) => (h.text, h.to),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    "expected {\"text\": \"…\", \"to\": \"optional JID\"}\n",
                );
            }
        }
    } else {
        (body, None)
    };
    if text.trim().is_empty() {
        return (StatusCode::BAD_REQUEST, "empty message\n");
    }
    let (to, type_) = match to {
        Some(to) => match Jid::new(&to) {
            Ok(j) => (j, MessageType::Chat),
            Err(_) => return (StatusCode::BAD_REQUEST, "`to` is not a JID\n"),
        },
        None if settings.room => (Jid::from(settings.to.to_bare()), MessageType::Groupchat),
        None => (settings.to.clone(), MessageType::Chat),
    };
    let mut message = Message::new_with_type(type_, Some(to));
    message.bodies.insert(Lang::default(), text);
    match cx.send(message).await {
        Ok(()) => (StatusCode::ACCEPTED, "sent\n"),
        Err(SendError::QueueFull(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the XMPP link is down and the queue is full\n",
        ),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use satellite::testing;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TOKEN: &str = "0123456789abcdef0123";

    async fn post(addr: SocketAddr, token: &str, content_type: &str, body: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.expect("read");
        response
    }

    fn free_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }

    #[tokio::test]
    async fn post_becomes_a_message_and_bad_tokens_are_refused() {
        let listen = free_addr();
        let settings = Settings {
            listen,
            token: TOKEN.into(),
            to: "ops@test".parse().expect("jid"),
            room: false,
            nick: "webhook".into(),
        };
        let (mut server, component) = testing::spawn(|b| b.plugin(Webhook::new(settings))).await;
        let mut response = String::new();
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                response = post(listen, TOKEN, "text/plain", "build 42 passed").await;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(response.starts_with("HTTP/1.1 202"), "{response}");
        let m = server.recv_matching(|e| e.name() == "message").await;
        assert_eq!(m.attr("to"), Some("ops@test"));
        assert_eq!(m.attr("from"), Some(testing::JID));
        assert_eq!(
            m.get_child("body", "jabber:component:accept")
                .map(|b| b.text()),
            Some("build 42 passed".into())
        );

        let response = post(listen, "wrong-token-wrong-token", "text/plain", "x").await;
        assert!(response.starts_with("HTTP/1.1 401"), "{response}");
        let response = post(
            listen,
            TOKEN,
            "application/json",
            r#"{"text":"hi","to":"ada@test"}"#,
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 202"), "{response}");
        let m = server.recv_matching(|e| e.name() == "message").await;
        assert_eq!(m.attr("to"), Some("ada@test"));
        let response = post(listen, TOKEN, "application/json", r#"{"txt":"hi"}"#).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        component.stop().await;
    }

    #[test]
    fn token_file_is_read_next_to_the_config() {
        let dir = std::env::temp_dir().join(format!("satellite-webhook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("webhook.token"), format!("{TOKEN}\n")).expect("token");
        let source = dir.join("webhook.toml");
        let source = source.to_str().expect("utf-8 path");
        let c = ComponentConfig::with_settings(
            "webhook.test",
            source,
            "token_file = \"webhook.token\"\nto = \"ops@test\"",
        )
        .expect("config");
        let settings = load_settings(&c).expect("settings");
        assert_eq!(settings.token, TOKEN);
        let c = ComponentConfig::with_settings(
            "webhook.test",
            source,
            "token_file = \"missing.token\"\nto = \"ops@test\"",
        )
        .expect("config");
        let err = load_settings(&c).expect_err("missing").to_string();
        assert!(
            err.contains("component[0].settings.token_file: cannot read"),
            "{err}"
        );
        let c = ComponentConfig::with_settings("webhook.test", source, "to = \"ops@test\"")
            .expect("config");
        let err = load_settings(&c).expect_err("no token").to_string();
        assert!(err.contains("settings.token: missing"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
