//! A readiness probe for actix-web: [`readiness`] answers 200 when the validator's signing
//! keys are loaded (or last-known-good keys are served), 503 until then.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, Route};
use tower_azure_auth::validation::Readiness;
use tower_azure_auth::TokenValidator;

/// The readiness probe's route (`GET`; mount it as `/readyz`): 200 when the validator can
/// check tokens, 503 until its signing keys are loaded, with
/// [`Readiness::to_json`] as the body and `Cache-Control: no-store`. Distinct from liveness:
/// a process waiting for its keys is alive and must not be restarted, only kept out of the
/// load balancer.
///
/// ```
/// use actix_web::{test, App};
/// use actix_azure_auth::{tower_azure_auth::Authority, TokenValidator};
///
/// # actix_web::rt::System::new().block_on(async {
/// // An authority that cannot be reached yet: not ready.
/// let validator = TokenValidator::builder(Authority::oidc("http://127.0.0.1:9").unwrap())
///     .client_id("api")
///     .build()
///     .unwrap();
/// let app = test::init_service(
///     App::new().route("/readyz", actix_azure_auth::readiness(validator)),
/// )
/// .await;
/// let response = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
/// assert_eq!(response.status(), 503);
/// # });
/// ```
#[must_use]
pub fn readiness(validator: TokenValidator) -> Route {
    web::get().to(move || {
        let readiness = validator.readiness();
        async move { readiness_response(&readiness) }
    })
}

/// The probe's response for `readiness` (what [`readiness`](fn@readiness) answers).
#[must_use]
pub fn readiness_response(readiness: &Readiness) -> HttpResponse {
    let status = StatusCode::from_u16(readiness.status_code()).unwrap_or(StatusCode::OK);
    HttpResponse::build(status)
        .insert_header(ContentType::json())
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(readiness.to_json())
}
