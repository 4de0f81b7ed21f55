//! The managed identity endpoints: IMDS-shaped
//! (`GET /metadata/identity/oauth2/token`, header `Metadata: true`, api-version 2018-02-01)
//! and App Service-shaped (`GET /msi/token`, header `X-IDENTITY-HEADER`, api-version
//! 2019-08-01). Both answer with numbers as strings, as Azure does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as Extract};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use tower_azure_auth::claims::ClientAuthentication;

use super::respond::{enter, json_response, LOG_TARGET};
use crate::options::Endpoint;
use crate::state::{Mint, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Imds,
    AppService,
}

type Refusal = (StatusCode, Value);

fn oauth_error(error: &str, description: &str) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}

/// The decision: who asks, for which resource, and the token response.
fn issue(
    state: &State,
    flavour: Flavour,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Value, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match flavour {
        Flavour::Imds => {
            if !header("Metadata").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                return Err(oauth_error(
                    "invalid_request",
                    "Required metadata header not specified",
                ));
            }
        }
        Flavour::AppService => {
            let expected = state.identities.header().as_bytes();
            let sent = header("X-IDENTITY-HEADER").unwrap_or_default().as_bytes();
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected, sent).is_err() {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    json!({"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER."}),
                ));
            }
        }
    }
    let expected_version = match flavour {
        Flavour::Imds => "2018-02-01",
        Flavour::AppService => "2019-08-01",
    };
    match query.get("api-version") {
        Some(v) if v == expected_version => {}
        Some(v) => {
            return Err(oauth_error(
                "invalid_request",
                &format!("Unsupported api-version '{v}'; this endpoint speaks {expected_version}"),
            ))
        }
        None => {
            return Err(oauth_error(
                "invalid_request",
                "Required query variable 'api-version' is missing",
            ))
        }
    }
    let resource = query
        .get("resource")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            oauth_error(
                "invalid_request",
                "Required query variable 'resource' is missing",
            )
        })?;
    let object_param = match flavour {
        Flavour::Imds => "object_id",
        Flavour::AppService => "principal_id",
    };
    let ids = &state.identities.client_ids;
    let client_id = if let Some(id) = query.get("client_id") {
        ids.iter().find(|c| c.eq_ignore_ascii_case(id.trim()))
    } else if let Some(oid) = query.get(object_param) {
        ids.iter().find(|c| {
            state
                .registry
                .object_id_for(c)
                .eq_ignore_ascii_case(oid.trim())
        })
    } else {
        ids.first()
    }
    .ok_or_else(|| oauth_error("invalid_request", "Identity not found"))?;
    let (_, api) = state.registry.api(resource).ok_or_else(|| {
        oauth_error(
            "invalid_resource",
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}.",
                state.registry.tenant_id
            ),
        )
    })?;
    let mut extra = Map::new();
    extra.insert("idtyp".into(), "app".into());
    extra.insert(
        "xms_mirid".into(),
        format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/dev/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{client_id}"
        )
        .into(),
    );
    let minted = state
        .mint(&Mint {
            client_id,
            api,
            resource: resource.trim_end_matches('/'),
            roles: Vec::new(),
            version: api.version,
            acr: ClientAuthentication::Certificate,
            lifetime: None,
            extra: &extra,
            remove: &[],
        })
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "server_error", "error_description": "cannot sign the token"}),
            )
        })?;
    let now = u64::try_from(minted.now).unwrap_or(0);
    let expires_on = now.saturating_add(minted.expires_in);
    Ok(match flavour {
        Flavour::Imds => json!({
            "access_token": minted.token,
            "refresh_token": "",
            "expires_in": minted.expires_in.to_string(),
            "expires_on": expires_on.to_string(),
            "ext_expires_in": minted.ext_expires_in.to_string(),
            "not_before": now.saturating_sub(300).to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
        Flavour::AppService => json!({
            "access_token": minted.token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    })
}

async fn serve(
    state: Arc<State>,
    flavour: Flavour,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = enter(&state, Endpoint::ManagedIdentity, &headers).await {
        return fault;
    }
    match issue(&state, flavour, &query, &headers) {
        Ok(body) => json_response(StatusCode::OK, &body, "no-store, no-cache"),
        Err((status, body)) => {
            tracing::debug!(target: LOG_TARGET, %status, "managed identity request refused");
            json_response(status, &body, "no-store, no-cache")
        }
    }
}

pub(crate) async fn imds(
    Extract(state): Extract<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(state, Flavour::Imds, query, headers).await
}

pub(crate) async fn app_service(
    Extract(state): Extract<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(state, Flavour::AppService, query, headers).await
}
