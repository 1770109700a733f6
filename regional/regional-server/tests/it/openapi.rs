//! The OpenAPI document describes the API that runs. For every operation,
//! requests generated from the document (property-based: parameters,
//! headers and bodies drawn from their schemas, mixed with ids and SKUs
//! that exist) are sent to a live region, and every answer is checked
//! against the document: its status is documented for the operation, its
//! media type is the documented one, its body validates against the
//! documented schema, and a request valid by the document is never refused
//! as invalid (no `invalid`, `bad-request`, `malformed-json`,
//! `unsupported-media-type` or `body-too-large` problem).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::fixture::Fixture;

/// Problem types a request valid by the document must never get.
const REFUSED_AS_INVALID: [&str; 5] = [
    "invalid",
    "bad-request",
    "malformed-json",
    "unsupported-media-type",
    "body-too-large",
];

/// Values that exist in the fixture, mixed into generated parameters and
/// properties of the same name so requests also reach past the 404s.
#[derive(Debug, Default, Clone)]
struct Known(BTreeMap<&'static str, Vec<String>>);

impl Known {
    fn get(&self, name: &str) -> Option<&Vec<String>> {
        self.0.get(name).filter(|v| !v.is_empty())
    }
}

/// One operation of the document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    item: Value,
    secured: bool,
}

/// A generated request.
#[derive(Debug, Clone)]
struct Case {
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    /// The body is sent as one line of NDJSON (a bulk import's).
    ndjson: bool,
    /// Credentials left off on purpose (then 401 must be documented).
    without_credentials: bool,
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolved {pointer}")),
        None => schema,
    }
}

fn chars(min: usize, max: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(any::<char>(), min..=max)
        .prop_map(|c| c.into_iter().collect())
        .boxed()
}

/// A strategy for values valid by `schema`; `name` is the parameter or
/// property it is for (known values of that name are mixed in).
fn values(doc: &Value, schema: &Value, name: &str, known: &Known) -> BoxedStrategy<Value> {
    let schema = resolve(doc, schema);
    let generated = generated(doc, schema, known);
    // Known values are names and ids: only where the schema is a scalar
    // (a property of the same name may hold a record elsewhere).
    let scalar = matches!(
        schema.get("type").and_then(Value::as_str),
        Some("string" | "integer")
    );
    match known.get(name).filter(|_| scalar) {
        Some(list) => {
            let list: Vec<Value> = list.iter().map(|v| json!(v)).collect();
            prop_oneof![3 => proptest::sample::select(list), 1 => generated].boxed()
        }
        None => generated,
    }
}

fn generated(doc: &Value, schema: &Value, known: &Known) -> BoxedStrategy<Value> {
    for combinator in ["oneOf", "anyOf"] {
        if let Some(list) = schema.get(combinator).and_then(Value::as_array) {
            return Union::new(list.iter().map(|s| values(doc, s, "", known))).boxed();
        }
    }
    if let Some(list) = schema.get("allOf").and_then(Value::as_array) {
        if list.len() == 1 {
            return values(doc, &list[0], "", known);
        }
        // Several: each an object (a flattened enum and the fields beside
        // it), merged into one.
        let parts: Vec<BoxedStrategy<Value>> =
            list.iter().map(|s| values(doc, s, "", known)).collect();
        return parts
            .prop_map(|parts| {
                let mut merged = serde_json::Map::new();
                for part in parts {
                    let Value::Object(fields) = part else {
                        panic!("allOf of a schema that is not an object");
                    };
                    merged.extend(fields);
                }
                Value::Object(merged)
            })
            .boxed();
    }
    if let Some(list) = schema.get("enum").and_then(Value::as_array) {
        return proptest::sample::select(list.clone()).boxed();
    }
    let kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => panic!("schema without a type: {schema}"),
    };
    Union::new(
        kinds
            .into_iter()
            .map(|kind| typed(doc, schema, kind, known)),
    )
    .boxed()
}

fn typed(doc: &Value, schema: &Value, kind: &str, known: &Known) -> BoxedStrategy<Value> {
    let usize_of = |key: &str| schema.get(key).and_then(Value::as_u64).map(|v| v as usize);
    match kind {
        "null" => Just(Value::Null).boxed(),
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        "integer" => {
            let min = schema.get("minimum").and_then(Value::as_f64);
            let max = schema.get("maximum").and_then(Value::as_f64);
            match (min, max) {
                (Some(min), Some(max)) => {
                    let (min, max) = (min as i64, max as i64);
                    // The bounds themselves, and anything between.
                    prop_oneof![1 => Just(min), 1 => Just(max), 4 => min..=max]
                        .prop_map(Value::from)
                        .boxed()
                }
                (Some(min), None) => ((min as i64)..=i64::MAX).prop_map(Value::from).boxed(),
                _ => any::<i64>().prop_map(Value::from).boxed(),
            }
        }
        "string" => {
            let min = usize_of("minLength").unwrap_or(0);
            let max = usize_of("maxLength");
            match schema.get("pattern").and_then(Value::as_str) {
                Some(pattern) => {
                    let inner = pattern.trim_start_matches('^').trim_end_matches('$');
                    proptest::string::string_regex(inner)
                        .unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
                        .prop_map(move |s| {
                            // A pattern with open repetition can run past
                            // maxLength: keep whole characters up to it.
                            match max {
                                Some(max) => s.chars().take(max).collect(),
                                None => s,
                            }
                        })
                        .prop_filter("length and pattern", {
                            let re = regex::Regex::new(pattern).expect("pattern");
                            move |s: &String| s.chars().count() >= min && re.is_match(s)
                        })
                        .prop_map(Value::from)
                        .boxed()
                }
                None => chars(min, max.unwrap_or(24).min(min + 300))
                    .prop_map(Value::from)
                    .boxed(),
            }
        }
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            let min = usize_of("minItems").unwrap_or(0);
            let max = usize_of("maxItems").unwrap_or(4).min(min + 4);
            proptest::collection::vec(values(doc, &items, "", known), min..=max)
                .prop_map(Value::from)
                .boxed()
        }
        "object" => object(doc, schema, known),
        // Any finite number (a score): JSON has no NaN or infinity.
        "number" => prop_oneof![
            1 => Just(0.0),
            4 => -1e12f64..1e12,
            1 => any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
        .prop_map(Value::from)
        .boxed(),
        other => panic!("unsupported type {other}"),
    }
}

fn object(doc: &Value, schema: &Value, known: &Known) -> BoxedStrategy<Value> {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let key = name.clone();
            let value = values(doc, property, name, known).prop_map(move |v| (key.clone(), v));
            fields.push(if required.contains(name) {
                value.prop_map(Some).boxed()
            } else {
                proptest::option::of(value).boxed()
            });
        }
    }
    let extra = match schema.get("additionalProperties") {
        Some(values_schema) if values_schema.is_object() => {
            let names = schema
                .get("propertyNames")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            let max = schema
                .get("maxProperties")
                .and_then(Value::as_u64)
                .map_or(3, |m| (m as usize).min(3));
            proptest::collection::vec(
                (
                    values(doc, &names, "", known),
                    values(doc, values_schema, "", known),
                ),
                0..=max,
            )
            .boxed()
        }
        _ => Just(Vec::new()).boxed(),
    };
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut object = Map::new();
            for (key, value) in extra {
                if let Some(key) = key.as_str() {
                    object.insert(key.to_owned(), value);
                }
            }
            for (key, value) in fields.into_iter().flatten() {
                object.insert(key, value);
            }
            Value::Object(object)
        })
        .boxed()
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|r| {
                    r.iter()
                        .any(|r| r.as_object().is_some_and(|m| !m.is_empty()))
                });
            out.push(Operation {
                method,
                path: path.clone(),
                item: op.clone(),
                secured,
            });
        }
    }
    out
}

fn strategy(doc: &Value, op: &Operation, known: &Known) -> BoxedStrategy<Case> {
    let mut params: Vec<BoxedStrategy<Option<(String, String, String)>>> = Vec::new();
    for param in op.item["parameters"].as_array().into_iter().flatten() {
        let name = param["name"].as_str().expect("name").to_owned();
        let place = param["in"].as_str().expect("in").to_owned();
        let mut schema = param["schema"].clone();
        if name == "wait_ms" {
            // Valid up to 30 s; the test keeps its wall time short.
            schema["maximum"] = json!(50);
        }
        let value = values(doc, &schema, &name, known).prop_map(move |v| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (place.clone(), name.clone(), text)
        });
        params.push(if param["required"].as_bool() == Some(true) {
            value.prop_map(Some).boxed()
        } else {
            proptest::option::of(value).boxed()
        });
    }
    let ndjson_schema = op
        .item
        .pointer("/requestBody/content/application~1x-ndjson/schema");
    let ndjson = ndjson_schema.is_some();
    let body = match op
        .item
        .pointer("/requestBody/content/application~1json/schema")
        .or(ndjson_schema)
    {
        Some(schema) => values(doc, schema, "", known).prop_map(Some).boxed(),
        None => Just(None).boxed(),
    };
    let secured = op.secured;
    let path = op.path.clone();
    (params, body, proptest::bool::weighted(0.1))
        .prop_map(move |(params, body, drop)| {
            let mut case = Case {
                path: path.clone(),
                query: Vec::new(),
                headers: Vec::new(),
                body,
                ndjson,
                without_credentials: secured && drop,
            };
            for (place, name, value) in params.into_iter().flatten() {
                match place.as_str() {
                    "path" => case.path = case.path.replace(&format!("{{{name}}}"), &value),
                    "query" => case.query.push((name, value)),
                    "header" => case.headers.push((name, value)),
                    other => panic!("parameter in {other}"),
                }
            }
            case
        })
        .boxed()
}

/// Validators by (operation, status, media type), built once each.
type Validators = Mutex<HashMap<String, jsonschema::Validator>>;

fn validate_body(
    doc: &Value,
    validators: &Validators,
    pointer: &str,
    body: &Value,
) -> Result<(), String> {
    let mut validators = validators.lock().expect("validators");
    let validator = validators.entry(pointer.to_owned()).or_insert_with(|| {
        // The whole document as the root resource, so `#/components/...`
        // references resolve, applying the schema at the pointer.
        let mut schema = doc.clone();
        schema["$defs"] = json!({ "answer": doc.pointer(pointer).expect("schema") });
        schema["$ref"] = json!("#/$defs/answer");
        jsonschema::draft202012::options()
            .build(&schema)
            .unwrap_or_else(|e| panic!("schema at {pointer}: {e}"))
    });
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

async fn check(
    fx: &Fixture,
    doc: &Value,
    validators: &Validators,
    op: &Operation,
    token: &str,
    case: Case,
) -> Result<(), TestCaseError> {
    let mut url = reqwest::Url::parse(&format!("{}{}", fx.base, case.path)).expect("url");
    if !case.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&case.query);
    }
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{}", url.path(), query),
        None => url.path().to_owned(),
    };
    // The credentials the document asks for.
    let requires = |scheme: &str| {
        op.item
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|r| r.get(scheme).is_some()))
    };
    let session = requires("session");
    // An NDJSON body goes on after the credentials (which sign no body on
    // the admin routes that take one).
    let (json_body, ndjson_body) = match (&case.body, case.ndjson) {
        (Some(body), true) => (None, Some(format!("{body}\n"))),
        (body, _) => (body.clone(), None),
    };
    let case = &Case {
        body: json_body,
        ..case.clone()
    };
    let mut request = if case.without_credentials {
        let mut request = fx.client.request(op.method.clone(), url.as_str());
        if let Some(body) = &case.body {
            request = request.json(body);
        }
        request
    } else if requires("admin") {
        fx.admin(op.method.clone(), &path_and_query, case.body.as_ref())
    } else {
        fx.signed(
            op.method.clone(),
            &path_and_query,
            case.body.as_ref(),
            session.then_some(token),
        )
    };
    if let Some(lines) = ndjson_body {
        request = request
            .header("content-type", commerce::import::CONTENT_TYPE)
            .body(lines);
    }
    for (name, value) in &case.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    let what = format!("{} {} → {status} {media} {text}", op.method, path_and_query);
    let Some(documented) = op.item["responses"].get(status.as_str()) else {
        return Err(TestCaseError::fail(format!("undocumented status: {what}")));
    };
    if status == StatusCode::UNAUTHORIZED {
        prop_assert!(case.without_credentials, "credentials refused: {}", what);
    }
    let content = documented.get("content").and_then(Value::as_object);
    let Some((declared, _)) = content.and_then(|c| {
        c.iter().find(|(declared, _)| {
            media.split(';').next().map(str::trim) == declared.split(';').next().map(str::trim)
        })
    }) else {
        prop_assert!(
            content.is_none_or(|c| c.is_empty()) && text.is_empty(),
            "media type not documented: {} (documented: {:?})",
            what,
            content.map(|c| c.keys().collect::<Vec<_>>())
        );
        return Ok(());
    };
    if !declared.contains("json") {
        return Ok(());
    }
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {what}")))?;
    let pointer = format!(
        "/paths/{}/{}/responses/{}/content/{}/schema",
        escape(&op.path),
        op.method.as_str().to_lowercase(),
        status.as_str(),
        escape(declared)
    );
    if doc.pointer(&pointer).is_some() {
        validate_body(doc, validators, &pointer, &body)
            .map_err(|e| TestCaseError::fail(format!("body does not match: {e}: {what}")))?;
    }
    if let Some(kind) = body.get("type").and_then(Value::as_str)
        && declared == regional_api::problem::CONTENT_TYPE
    {
        let slug = kind.trim_start_matches(regional_api::problem::TYPE_PREFIX);
        prop_assert!(
            !REFUSED_AS_INVALID.contains(&slug),
            "a request valid by the document was refused: {}",
            what
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_generated_from_the_document_get_documented_answers() {
    let fx = Fixture::start().await;
    fx.category("lamps").await;
    fx.catalog(&[
        ("LAMP-1", "Desk lamp", 1_999),
        ("LAMP-2", "Floor lamp", 4_999),
    ])
    .await;
    fx.restock("us", "LAMP-1", 1_000).await;
    let (token, _) = fx.session("us").await;
    let mut carts = Vec::new();
    let mut orders = Vec::new();
    for i in 0..3 {
        let cart = fx.new_cart(&token).await;
        let add = fx
            .signed(
                Method::POST,
                &format!("/v1/carts/{cart}/items"),
                Some(&json!({ "sku": "LAMP-1", "qty": 1 })),
                Some(&token),
            )
            .send()
            .await
            .expect("add");
        assert_eq!(add.status(), StatusCode::OK);
        if i == 0 {
            let (status, order) = fx.checkout(&token, &cart, "known-order").await;
            assert_eq!(status, StatusCode::CREATED, "{order}");
            orders.push(order["id"].as_str().expect("id").to_owned());
        }
        carts.push(cart);
    }
    let written: Value = fx
        .signed(
            Method::PUT,
            "/v1/products/LAMP-1/reviews/mine",
            Some(&json!({ "rating": 4, "title": "Bright", "body": "", "lang": "en" })),
            Some(&token),
        )
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("review json");
    let review_id = written["id"].as_str().expect("review id").to_owned();
    let known = Known(BTreeMap::from([
        ("review_id", vec![review_id]),
        ("sku", vec!["LAMP-1".to_owned(), "LAMP-2".to_owned()]),
        ("slug", vec!["lamps".to_owned()]),
        ("category", vec!["lamps".to_owned(), "test".to_owned()]),
        ("parent", vec!["lamps".to_owned()]),
        ("warehouse", vec!["us".to_owned(), "eu".to_owned()]),
        ("shard", vec!["us".to_owned()]),
        ("cart_id", carts),
        ("order_id", orders.clone()),
        ("before", orders),
    ]));
    let doc: Value = fx.openapi().await;
    let cases: u32 = std::env::var("OPENAPI_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let validators: Validators = Mutex::default();
    let handle = tokio::runtime::Handle::current();
    let ops = operations(&doc);
    assert!(ops.len() >= 24, "{} operations", ops.len());
    for op in &ops {
        let strategy = strategy(&doc, op, &known);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        // The runner's error holds the failing case: report it as text.
        let outcome: Result<(), String> = tokio::task::block_in_place(|| {
            runner
                .run(&strategy, |case| {
                    handle.block_on(check(&fx, &doc, &validators, op, &token, case))
                })
                .map_err(|e| e.to_string())
        });
        if let Err(e) = outcome {
            panic!("{} {}: {e}", op.method, op.path);
        }
    }
}
