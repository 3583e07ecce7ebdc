//! The HTTP side: routes, browser-safety headers, CORS, and the listener
//! (plain or direct TLS, a connection cap, idle timeouts, graceful stop).

mod body;
mod get;
mod linger;
mod listener;
pub mod path;
mod put;
pub mod range;
mod sendfile;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use listener::{serve, tls_acceptor};

use crate::service::Service;

/// A plain-text reply.
pub fn reply(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// The service's routes with their layers.
pub fn router(service: Arc<Service>) -> Router {
    let https = service.settings.public_url.starts_with("https://");
    let cors = cors(&service.settings.cors_origins);
    Router::new()
        .fallback(dispatch)
        .with_state(service)
        .layer(axum::middleware::map_response(move |r| {
            safety_headers(r, https)
        }))
        .layer(cors)
}

async fn dispatch(State(service): State<Arc<Service>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match parts.method {
        Method::GET | Method::HEAD if parts.uri.path() == "/" => reply(
            StatusCode::OK,
            "satellite upload: files shared over XMPP (XEP-0363) are uploaded and served here.",
        ),
        Method::GET | Method::HEAD => get::get(service, parts).await,
        Method::PUT => put::put(service, parts, body).await,
        _ => {
            let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, PUT, OPTIONS"),
            );
            r
        }
    }
}

/// CORS for web clients (Converse.js, movim…): on every response, errors
/// included, and preflights.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::CONTENT_DISPOSITION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::ACCEPT_RANGES,
        ])
        .max_age(Duration::from_secs(86400))
}

/// Headers that keep an uploaded file from acting as a web page of this
/// origin: no sniffing, no scripts, no framing, sandboxed.
async fn safety_headers(mut response: Response<Body>, https: bool) -> Response<Body> {
    let h = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; sandbox",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "cross-origin",
        ),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}
