//! tonic (feature `tonic`): the caller's verified [`Claims`] in a handler.
//!
//! [`ValidateAccessTokenLayer`](crate::layers::ValidateAccessTokenLayer) in front of a tonic
//! server (`Server::builder().layer(ValidateAccessTokenLayer::new(validator).grpc())`) puts the
//! claims into the request extensions, which tonic hands to the handler as
//! `Request::extensions()`; [`claims`] reads them, or answers `UNAUTHENTICATED` when the layer
//! is missing.
//!
//! ```
//! use tonic::{Request, Status};
//! use tower_azure_auth::Claims;
//!
//! fn caller(request: &Request<()>) -> Result<String, Status> {
//!     let claims = tower_azure_auth::tonic::claims(request)?;
//!     Ok(claims.client_id().unwrap_or("unknown").to_owned())
//! }
//!
//! let mut request = Request::new(());
//! assert_eq!(caller(&request).unwrap_err().code(), tonic::Code::Unauthenticated);
//! let claims = Claims::from_json(serde_json::json!({ "azp": "e4c9ab4e-bd27-40d5-8459-230ba2a757fb" })).unwrap();
//! request.extensions_mut().insert(claims);
//! assert_eq!(caller(&request).unwrap(), "e4c9ab4e-bd27-40d5-8459-230ba2a757fb");
//! ```
//!
//! The outbound side needs nothing more than
//! [`AddAccessTokenLayer`](crate::layers::AddAccessTokenLayer) in front of the `Channel`;
//! with this feature it also replays a unary call refused with `UNAUTHENTICATED`
//! (`invalid_token`) once with a refreshed token.

use crate::claims::Claims;

/// The verified claims of the caller, from the request extensions.
///
/// # Errors
///
/// `UNAUTHENTICATED` when there are none (no validation layer in front of the service, or a
/// deferring one that let an anonymous call through).
pub fn claims<T>(request: &::tonic::Request<T>) -> Result<&Claims, ::tonic::Status> {
    request.extensions().get::<Claims>().ok_or_else(|| {
        ::tonic::Status::unauthenticated(
            "no verified access token (is ValidateAccessTokenLayer in front of the service?)",
        )
    })
}
