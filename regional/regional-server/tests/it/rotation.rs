//! Secrets rotate without downtime: a region accepts its primary and its
//! secondary edge key, session key and admin token, issues sessions with
//! the primary only, and refuses the old ones once they are dropped.

use regional_server::config::Secrets;
use reqwest::{Method, StatusCode};

use crate::fixture::{Fixture, Options, problem};

const OLD_EDGE: &str = "old-edge-key-0123456789";
const NEW_EDGE: &str = "new-edge-key-0123456789";
const OLD_SESSION: &str = "old-session-key-0123456789";
const NEW_SESSION: &str = "new-session-key-0123456789";
const OLD_ADMIN: &str = "old-admin-token";
const NEW_ADMIN: &str = "new-admin-token";

async fn region(secrets: Secrets) -> Fixture {
    Fixture::start_with(Options {
        workers: false,
        secrets,
        ..Options::default()
    })
    .await
}

/// Whether `fx` takes a signed, session-bearing write (a new cart) signed
/// with `edge_key` for the session `token`: the status, and the problem's
/// type when refused.
async fn new_cart(fx: &mut Fixture, edge_key: &str, token: &str) -> (StatusCode, String) {
    fx.edge_key = edge_key.into();
    let response = fx
        .signed(Method::POST, "/v1/carts", None, Some(token))
        .send()
        .await
        .expect("send");
    let status = response.status();
    if status.is_success() {
        return (status, String::new());
    }
    let body = problem(response, status).await;
    (status, body["type"].as_str().unwrap_or_default().to_owned())
}

/// The status of an admin read with `token`.
async fn admin_read(fx: &mut Fixture, token: &str) -> StatusCode {
    fx.admin_token = token.into();
    fx.admin(Method::GET, "/v1/admin/stock/us/MUG-1", None)
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test]
async fn a_region_accepts_the_secondary_secrets_during_a_rotation_and_not_after() {
    // Before: every region on the old secrets; a shopper holds a session
    // the old key signed.
    let mut before = region(Secrets {
        edge_key: OLD_EDGE.into(),
        session_key: OLD_SESSION.into(),
        admin_token: OLD_ADMIN.into(),
        ..Secrets::default()
    })
    .await;
    before.edge_key = OLD_EDGE.into();
    let (old_session, _) = before.session("us").await;

    // During: the new secrets are primary, the old ones secondary.
    let mut during = region(Secrets {
        edge_key: NEW_EDGE.into(),
        edge_key_secondary: OLD_EDGE.into(),
        session_key: NEW_SESSION.into(),
        session_key_secondary: OLD_SESSION.into(),
        admin_token: NEW_ADMIN.into(),
        admin_token_secondary: OLD_ADMIN.into(),
    })
    .await;
    for edge_key in [OLD_EDGE, NEW_EDGE] {
        let (status, kind) = new_cart(&mut during, edge_key, &old_session).await;
        assert_eq!(status, StatusCode::CREATED, "{edge_key}: {kind}");
    }
    assert_eq!(admin_read(&mut during, OLD_ADMIN).await, StatusCode::OK);
    assert_eq!(admin_read(&mut during, NEW_ADMIN).await, StatusCode::OK);
    // A third key is refused all the same.
    let (status, kind) = new_cart(&mut during, "some-other-key-0123456789", &old_session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(kind.ends_with("signature-invalid"), "{kind}");
    assert_eq!(
        admin_read(&mut during, "some-other-token").await,
        StatusCode::UNAUTHORIZED
    );
    // It issues with the new session key only: a region still on the old
    // key alone refuses its sessions, one on the new key takes them.
    during.edge_key = NEW_EDGE.into();
    let (new_session, _) = during.session("us").await;
    let (status, kind) = new_cart(&mut before, OLD_EDGE, &new_session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(kind.ends_with("session-invalid"), "{kind}");

    // After: the old secrets dropped.
    let mut after = region(Secrets {
        edge_key: NEW_EDGE.into(),
        session_key: NEW_SESSION.into(),
        admin_token: NEW_ADMIN.into(),
        ..Secrets::default()
    })
    .await;
    let (status, _) = new_cart(&mut after, NEW_EDGE, &new_session).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, kind) = new_cart(&mut after, OLD_EDGE, &new_session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(kind.ends_with("signature-invalid"), "{kind}");
    let (status, kind) = new_cart(&mut after, NEW_EDGE, &old_session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(kind.ends_with("session-invalid"), "{kind}");
    assert_eq!(
        admin_read(&mut after, OLD_ADMIN).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(admin_read(&mut after, NEW_ADMIN).await, StatusCode::OK);
}

#[test]
fn secondary_secrets_come_from_the_environment_and_are_checked() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/local/regions/eu-west.toml");
    let loaded = regional_server::config::load(&path, |name| match name {
        "MERIDIAN_EDGE_KEY_SECONDARY" => Some(OLD_EDGE.into()),
        "MERIDIAN_SESSION_KEY_SECONDARY" => Some(OLD_SESSION.into()),
        "MERIDIAN_ADMIN_TOKEN" => Some(NEW_ADMIN.into()),
        "MERIDIAN_ADMIN_TOKEN_SECONDARY" => Some(OLD_ADMIN.into()),
        _ => None,
    })
    .expect("load");
    let secrets = &loaded.config.secrets;
    assert_eq!(secrets.edge_keys().len(), 2);
    assert_eq!(secrets.edge_keys()[1], OLD_EDGE.as_bytes());
    assert_eq!(secrets.session_keys()[1], OLD_SESSION.as_bytes());
    let admins: Vec<String> = secrets
        .admin_tokens()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(admins, [NEW_ADMIN, OLD_ADMIN]);
    let err = regional_server::config::load(&path, |name| {
        (name == "MERIDIAN_EDGE_KEY_SECONDARY").then(|| "short".into())
    })
    .expect_err("short secondary");
    assert!(
        format!("{err:#}").contains("secrets.edge_key_secondary"),
        "{err:#}"
    );
}
