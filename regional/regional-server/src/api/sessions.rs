//! Shopper sessions: `POST /v1/sessions`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSession {
    /// The shard to create the shopper in; this region's home shard when absent.
    #[serde(default)]
    #[schema(schema_with = shard)]
    shard: Option<String>,
}

fn shard() -> utoipa::openapi::schema::Schema {
    commerce::openapi::nullable(
        commerce::openapi::string(ShardId::PATTERN, 1, ShardId::MAX_LEN),
        utoipa::openapi::Type::String,
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SessionOut {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    shopper_id: String,
    expires_ms: u64,
}

/// Starts a shopper session (a new shopper id in this region's shard).
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = NewSession,
    responses((status = 201, body = SessionOut),
        (status = 404, body = Problem, description = "No such shard"),
        (status = 421, body = Problem, description = "The shard is not served here")))]
pub(super) async fn create_session(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewSession>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let shard = match &body.shard {
        Some(text) => parse_shard(&state, text)?,
        None => state.commerce.home_shard().cloned().ok_or_else(|| {
            ApiError::from(CommerceError::Invalid {
                field: "shard",
                reason: "this region serves no shard".into(),
            })
        })?,
    };
    if !state.commerce.served().contains(&shard) {
        return Err(CommerceError::Shard(db::ShardMapError::NotServed { shard }).into());
    }
    let shopper = state.commerce.new_id(&shard);
    let (token, claims) = state.sessions.issue(shopper, state.commerce.now_ms());
    Ok((
        StatusCode::CREATED,
        Json(SessionOut {
            token,
            shopper_id: claims.sub.to_string(),
            expires_ms: claims.exp_ms,
        }),
    ))
}
