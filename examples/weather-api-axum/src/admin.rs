//! `POST /admin/revocations`: an operator revokes tokens on this replica and, with
//! `AzureAd:Revocation:Redis` configured, on every replica of the fleet.
//!
//! The caller needs the application role [`ADMIN_ROLE`] and a certificate-authenticated token
//! (`azpacr`/`appidacr` 2). The body names what to revoke and, optionally, until when (Unix
//! seconds; default: the longest token lifetime the validator accepts):
//!
//! ```text
//! POST /admin/revocations
//! Authorization: Bearer <token with the Revocations.Admin role>
//! Content-Type: application/json
//!
//! {"by": "client", "value": "11111111-aaaa-4000-8000-000000000001", "until": 1767225600}
//! ```
//!
//! `by` is `client` (`azp`/`appid`), `object` (`oid`), `tenant` (`tid`) or `token_id`
//! (`uti`/`jti`). Answers: 200 `{"revoked": …, "until": …, "shared": true}`; 400 for a body
//! that names nothing; 502 when the revocation is in force here but could not be shared with
//! the fleet (Redis unreachable: send it again).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tower_azure_auth::authorization::Policy;
use tower_azure_auth::claims::ClientAuthentication;
use tower_azure_auth::layers::{RequirePolicyLayer, ValidateAccessTokenLayer};
use tower_azure_auth::validation::revocation::{self, Revocation};
use tower_azure_auth::TokenValidator;

/// The application role an operator's token needs.
pub const ADMIN_ROLE: &str = "Revocations.Admin";

/// The body of `POST /admin/revocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    /// `client`, `object`, `tenant` or `token_id`.
    pub by: String,
    /// The client id, object id, tenant id or token id.
    pub value: String,
    /// Until when, Unix seconds (default: the longest token lifetime accepted).
    #[serde(default)]
    pub until: Option<u64>,
}

/// The admin routes, behind the validation and the admin policy.
pub fn router(validator: TokenValidator) -> Router {
    let policy = Policy::builder()
        .require_role(ADMIN_ROLE)
        .require_client_authentication(ClientAuthentication::Certificate)
        .build();
    Router::new()
        .route("/admin/revocations", post(revoke))
        .with_state(validator.clone())
        .layer(RequirePolicyLayer::new(policy))
        .layer(ValidateAccessTokenLayer::new(validator))
}

fn error(status: StatusCode, description: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": "invalid_request", "error_description": description})),
    )
        .into_response()
}

async fn revoke(
    State(validator): State<TokenValidator>,
    Json(request): Json<RevocationRequest>,
) -> Response {
    let value = request.value.trim();
    if value.is_empty() || value.len() > 256 {
        return error(
            StatusCode::BAD_REQUEST,
            "`value` must name a client, object, tenant or token id",
        );
    }
    let mut revocation = match request.by.as_str() {
        "client" => Revocation::client(value),
        "object" => Revocation::object(value),
        "tenant" => Revocation::tenant(value),
        "token_id" => Revocation::token_id(value),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "`by` must be client, object, tenant or token_id",
            )
        }
    };
    if let Some(until) = request.until {
        revocation = revocation.until(revocation::from_unix_seconds(until));
    }
    tracing::info!(by = %request.by, "revocation requested by an operator");
    match validator.revoke(revocation).await {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({"revoked": request.by, "until": request.until, "shared": true})),
        )
            .into_response(),
        Err(failure) => (
            StatusCode::BAD_GATEWAY,
            Json(serde_json::json!({
                "revoked": request.by,
                "shared": false,
                "error_description": format!("in force on this replica, but not shared with the fleet ({failure}); send it again"),
            })),
        )
            .into_response(),
    }
}
