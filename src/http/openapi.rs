//! `/openapi.json`: the OpenAPI description of the HTTP API, generated from the
//! handlers' own annotations and types (utoipa), so it cannot drift from them.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api, sse, upgrade};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "realtime-hub",
        description = "HTTP API of realtime-hub: publish events into rooms, read status, rooms, history and keyed rooms' state, administer sessions. The WebSocket and SSE protocol itself is described in docs/PROTOCOL.md.",
        license(name = "MIT")
    ),
    paths(
        api::socket_status,
        api::list_sockets,
        api::publish,
        api::publish_batch,
        api::publish_user,
        api::list_rooms,
        api::history,
        api::state,
        api::disconnect,
        api::presence,
        api::metrics,
        api::healthz,
        api::readyz,
        openapi_json,
        upgrade::connect,
        upgrade::connect_alias,
        upgrade::room,
        sse::sse,
    ),
    modifiers(&ApiKey),
    tags(
        (name = "publish", description = "Backend services publish events (write API)"),
        (name = "rooms", description = "Rooms, their order and history"),
        (name = "status", description = "Status, health and metrics"),
        (name = "admin", description = "Session administration (admin API)"),
        (name = "websocket", description = "WebSocket endpoints (upgrade only)"),
        (name = "sse", description = "Server-Sent Events: the socket frames over plain HTTP, for networks that block WebSocket"),
    )
)]
pub struct ApiDoc;

/// Declares the Bearer API key of the write/admin endpoints.
struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "One of auth.api_keys. With no keys configured, only loopback clients addressing the hub by a loopback Host (or one of server.public_hosts) may call these endpoints. Any of them refuses a browser Origin not in server.allowed_origins (403 forbidden_origin), and a request body not declared application/json (415).",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "status",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn openapi_json() -> HttpResponse {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    HttpResponse::Ok().json(doc)
}
