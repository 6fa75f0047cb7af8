//! `/openapi.json`: an OpenAPI 3 document that lists every route of the HTTP API
//! (contract section 6) with its methods. Schemathesis checks responses against
//! it in `scripts/schemathesis`.

mod common;

use common::*;

#[tokio::test]
async fn openapi_document_is_valid_and_lists_every_route() {
    let hub = start(|_| {});
    let (status, doc) = get(&hub.http("/openapi.json")).await;
    assert_eq!(status, 200);
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "realtime-hub");
    let routes = [
        ("/socket-status", "get"),
        ("/socket-status/sockets", "get"),
        ("/api/rooms/{room}/events", "post"),
        ("/api/events", "post"),
        ("/api/users/{user}/events", "post"),
        ("/api/rooms", "get"),
        ("/api/rooms/{room}/history", "get"),
        ("/api/rooms/{room}/state", "get"),
        ("/api/rooms/{room}/presence", "get"),
        ("/api/sockets/{id}/disconnect", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/ws", "get"),
        ("/ws/connect", "get"),
        ("/ws/{room}", "get"),
        ("/sse", "get"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in routes {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"]["200"].is_object() || op["responses"]["101"].is_object(),
            "{path}: success response"
        );
    }
    assert_eq!(
        paths.len(),
        routes.len(),
        "no undocumented extras: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // Every $ref resolves.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().expect("name");
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    // Write endpoints declare the API key scheme.
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let publish = &paths["/api/rooms/{room}/events"]["post"];
    assert!(publish["security"].to_string().contains("api_key"));
    // Keyed rooms: the publish body's key/delete and the 409.
    let body = &schemas["RoomEventBody"]["properties"];
    assert!(
        body["key"].is_object() && body["delete"].is_object(),
        "{body}"
    );
    assert!(publish["responses"]["409"].is_object());
}
