//! `GET /oauth/v1/generate?grant_type=client_credentials` and the bearer check every other
//! endpoint starts with.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::Shared;
use crate::wire::{self, ApiError, ApiResult};

#[derive(serde::Deserialize)]
pub(crate) struct GrantQuery {
    grant_type: Option<String>,
}

pub(crate) async fn generate(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<GrantQuery>,
    headers: HeaderMap,
) -> ApiResult {
    if q.grant_type.as_deref() != Some("client_credentials") {
        return Err(ApiError::new("400.008.02", "Invalid grant type passed"));
    }
    let bad_auth = || ApiError::new("400.008.01", "Invalid Authentication passed");
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(bad_auth)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad_auth())?;
    let expected = format!(
        "{}:{}",
        shared.config.consumer_key,
        shared.config.consumer_secret.expose_secret()
    );
    if decoded != expected.as_bytes() {
        return Err(bad_auth());
    }

    let token = wire::opaque_token();
    let lifetime = shared.config.token_lifetime;
    {
        let mut st = shared.state();
        if shared.config.new_token_invalidates_previous {
            st.tokens.clear();
        }
        st.tokens.insert(token.clone(), Instant::now() + lifetime);
    }
    let secs = lifetime.as_secs();
    let expires_in = if shared.config.expires_in_as_string {
        json!(secs.to_string())
    } else {
        json!(secs)
    };
    Ok(axum::Json(json!({ "access_token": token, "expires_in": expires_in })).into_response())
}

/// `404.001.03 Invalid Access Token` unless the request carries a live bearer token.
pub(crate) fn require_token(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::bad_token)?;
    let mut st = shared.state();
    match st.tokens.get(token.trim()) {
        Some(expiry) if *expiry > Instant::now() => Ok(()),
        Some(_) => {
            st.tokens.remove(token.trim());
            Err(ApiError::bad_token())
        }
        None => Err(ApiError::bad_token()),
    }
}

/// The start of every POST endpoint: a live token, `Content-Type: application/json`
/// (without it Daraja blames the field named `missing_type_field`), and a JSON object.
pub(crate) fn authorized_body(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    missing_type_field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    require_token(shared, headers)?;
    if !wire::has_json_content_type(headers) {
        return Err(ApiError::invalid(missing_type_field));
    }
    wire::json_object(body)
}
