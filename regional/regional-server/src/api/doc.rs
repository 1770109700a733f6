//! The OpenAPI document. Each handler's annotation states what the handler
//! itself answers (its body types, the statuses of its own outcomes, its
//! parameters with the schemas below); [`finish`] adds what the layers in
//! front of a group of routes answer (edge signature and admin token: 401
//! and the security requirement; the extractors: 400, 413, 415 and 422; the
//! deadline: 504), turns every problem answer's media type into
//! `application/problem+json` and declares the security schemes. So the
//! document is built from the code that runs, and the conformance test
//! (tests/it/openapi.rs) holds the two equal.

use commerce::openapi::{count, string};
use serde_json::{Map, Value, json};
use topology::{ShardId, ShardedId};
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Meridian regional API",
        description = "Catalog, search, carts, checkout and orders of one region. Errors are RFC 9457 problem+json."
    ),
    components(schemas(Problem))
)]
pub(super) struct ApiDoc;

/// A schema for a parameter (`inline(X)` in a handler's `params`).
macro_rules! param_schema {
    ($(#[$meta:meta])* $name:ident => $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub(super) struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T($schema.build().into())
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

param_schema!(
    /// A cart or order id, `<shard>.<ulid>`.
    IdParam => string(ShardedId::PATTERN, 1, ShardedId::MAX_TEXT_LEN)
        .description(Some("`<shard>.<ulid>`, e.g. `us.01ARZ3NDEKTSV4RRFFQ69G5FAV`"))
);
param_schema!(
    /// A shard (a warehouse is a shard).
    ShardParam => string(ShardId::PATTERN, 1, ShardId::MAX_LEN)
);
param_schema!(
    /// A product's SKU.
    SkuParam => string(commerce::catalog::SKU_PATTERN, 1, commerce::catalog::MAX_SKU_LEN)
);
param_schema!(
    /// A category's slug.
    SlugParam => string(commerce::catalog::SLUG_PATTERN, 1, commerce::catalog::MAX_SLUG_LEN)
);
param_schema!(
    /// An `Idempotency-Key`.
    KeyParam => string(
        regional_api::idempotency::KEY_PATTERN,
        1,
        regional_api::idempotency::MAX_KEY_LEN
    )
    .description(Some("1 to 128 visible ASCII characters"))
);
param_schema!(
    /// A bulk import's id, chosen by its client.
    ImportIdParam => string(commerce::import::ID_PATTERN, 1, commerce::import::MAX_ID_LEN)
);
param_schema!(
    /// A catalog version.
    VersionParam => count(0, i64::MAX as u64)
);

/// The layers in front of a group of routes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Group {
    /// Shopper routes; `edge`: edge signatures are required.
    Shopper { edge: bool },
    /// Admin routes (the admin token).
    Admin,
    /// Health, readiness, metrics, this document.
    Ops,
}

const EDGE: [&str; 3] = ["edge_signature", "edge_timestamp", "edge_nonce"];
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Adds what `group`'s layers answer to each of its operations.
pub(super) fn finish(doc: &mut Value, group: Group) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                finish_operation(op, group);
            }
        }
    }
}

fn finish_operation(op: &mut Map<String, Value>, group: Group) {
    let mut added: Vec<(&str, &str)> = Vec::new();
    match group {
        Group::Shopper { edge } => {
            let mut requirements = match op.remove("security") {
                Some(Value::Array(list)) if !list.is_empty() => list,
                _ => vec![json!({})],
            };
            if edge {
                for requirement in &mut requirements {
                    if let Some(map) = requirement.as_object_mut() {
                        for scheme in EDGE {
                            map.insert(scheme.into(), json!([]));
                        }
                    }
                }
            }
            if requirements
                .iter()
                .any(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            {
                op.insert("security".into(), Value::Array(requirements));
                added.push((
                    "401",
                    "A missing or invalid edge signature or session token",
                ));
            }
        }
        Group::Admin => {
            op.insert("security".into(), json!([{ "admin": [] }]));
            added.push(("401", "A missing or wrong admin token"));
        }
        Group::Ops => {}
    }
    // A parameter is text in a path, query or header: never JSON null, so
    // an optional one's schema is its value's (`required` says optional).
    if let Some(list) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for param in list {
            let Some(schema) = param.get_mut("schema") else {
                continue;
            };
            let not_null = schema
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|list| {
                    let rest: Vec<&Value> = list
                        .iter()
                        .filter(|s| s.get("type") != Some(&json!("null")))
                        .collect();
                    (rest.len() == 1).then(|| rest[0].clone())
                });
            if let Some(value) = not_null {
                *schema = value;
            }
        }
    }
    let params: Vec<&str> = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| p.get("in").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if op.contains_key("requestBody") {
        added.push(("400", "The body is not JSON"));
        added.push(("413", "The body exceeds the size limit"));
        added.push(("415", "The body is not application/json"));
        added.push(("422", "The body does not match its schema"));
    }
    if params.contains(&"path") {
        added.push(("400", "A path parameter does not match its schema"));
    }
    if params.contains(&"query") {
        added.push(("422", "The query string does not match its schema"));
    }
    added.push((
        "504",
        "Past the request deadline; a write may have been applied (`maybe-applied`): resend it only with the same Idempotency-Key",
    ));
    let Some(responses) = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for (status, description) in added {
        responses.entry(status).or_insert_with(|| {
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
            })
        });
    }
    for (status, response) in responses.iter_mut() {
        if response.get("description").and_then(Value::as_str) == Some("") {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("");
            response["description"] = json!(reason);
        }
        let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        let is_problem = content
            .get("application/json")
            .and_then(|c| c.pointer("/schema/$ref"))
            .and_then(Value::as_str)
            == Some("#/components/schemas/Problem");
        if is_problem && let Some(json) = content.remove("application/json") {
            content.insert(regional_api::problem::CONTENT_TYPE.into(), json);
        }
        if status == "503"
            && let Some(response) = response.as_object_mut()
        {
            response.insert(
                "headers".into(),
                json!({ "Retry-After": {
                    "description": "Seconds to wait before trying again, when known",
                    "schema": { "type": "integer", "minimum": 0 }
                }}),
            );
        }
    }
}

/// Joins the groups' documents and declares the security schemes.
pub(super) fn assemble(parts: Vec<(utoipa::openapi::OpenApi, Group)>) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    for (part, group) in parts {
        let mut part = serde_json::to_value(part).unwrap_or_else(|_| json!({}));
        finish(&mut part, group);
        merge(&mut doc, &part, &["paths"]);
        merge(&mut doc, &part, &["components", "schemas"]);
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert(
            "securitySchemes".into(),
            json!({
                "session": {
                    "type": "http", "scheme": "bearer",
                    "description": "A shopper session token from POST /v1/sessions"
                },
                "admin": {
                    "type": "http", "scheme": "bearer",
                    "description": "The region's admin token"
                },
                "edge_signature": {
                    "type": "apiKey", "in": "header", "name": topology::signing::SIGNATURE_HEADER,
                    "description": "HMAC-SHA256 over the canonical request with the edge key (edges only)"
                },
                "edge_timestamp": {
                    "type": "apiKey", "in": "header", "name": topology::signing::TIMESTAMP_HEADER,
                    "description": "Unix seconds the edge signed at"
                },
                "edge_nonce": {
                    "type": "apiKey", "in": "header", "name": topology::signing::NONCE_HEADER,
                    "description": "A nonce used once"
                }
            }),
        );
    }
    doc
}

/// Adds the members of the object at `path` in `from` to the one in `into`.
fn merge(into: &mut Value, from: &Value, path: &[&str]) {
    let mut source = from;
    for key in path {
        match source.get(key) {
            Some(next) => source = next,
            None => return,
        }
    }
    let Some(source) = source.as_object() else {
        return;
    };
    let mut target = into;
    for key in path {
        let Some(object) = target.as_object_mut() else {
            return;
        };
        target = object.entry(*key).or_insert_with(|| json!({}));
    }
    if let Some(target) = target.as_object_mut() {
        for (name, value) in source {
            target.insert(name.clone(), value.clone());
        }
    }
}
