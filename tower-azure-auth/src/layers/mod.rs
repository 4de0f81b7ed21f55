//! Tower layers: inbound [`ValidateAccessTokenLayer`], the router-wide [`AuthorizeLayer`] and
//! the per-route [`RequirePolicyLayer`] (with the shorthands [`RequireRole`], [`RequireClaim`]
//! and [`RequireClientAuthentication`]); outbound [`AddAccessTokenLayer`].
//!
//! Names come in threes, as in tower-http: `ValidateAccessTokenLayer` → `ValidateAccessToken<S>`
//! → [`validate_access_token::ResponseFuture`]; `RequirePolicyLayer` → `RequirePolicy<S>` →
//! [`require::ResponseFuture`]; `AuthorizeLayer` → `Authorize<S>`; `AddAccessTokenLayer` →
//! `AddAccessToken<S>` → [`add_access_token::ResponseFuture`]. Every service offers
//! `get_ref`, `get_mut` and `into_inner` for its inner service. gRPC: [`GrpcAuthorizeLayer`]
//! (per-method policies) and [`GrpcRefusal`] (see [`grpc`]).
//!
//! A refusal response carries its cause in its extensions (the [`AuthError`](crate::AuthError)
//! of a `401`/`503`, the [`AuthorizationFailure`](crate::authorization::AuthorizationFailure)
//! of a `403`), also when a `with_rejection` builder made it, so that an outer metrics or
//! logging layer can label it.
//!
//! Every `ResponseFuture` here panics when polled after it completed (as tower-http's and
//! `async` blocks do): a future that returned `Poll::Ready` must not be polled again.

/// The panic message of a `ResponseFuture` polled after completion.
pub(crate) const POLLED_AFTER_COMPLETION: &str = "`ResponseFuture` polled after completion";

/// `get_ref`, `get_mut` and `into_inner` for a service `$service<S, ..>` with an `inner: S`
/// field.
macro_rules! inner_service_accessors {
    ($service:ident < S $(, $param:ident)* >) => {
        impl<S $(, $param)*> $service<S $(, $param)*> {
            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// The inner service, consuming this one.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

pub mod add_access_token;
pub mod authorize;
pub mod grpc;
mod replay;
pub mod require;
pub mod validate_access_token;

pub use add_access_token::{AddAccessToken, AddAccessTokenLayer, AddAccessTokenLayerBuilder};
pub use authorize::{Authorize, AuthorizeLayer};
pub use grpc::{GrpcAuthorize, GrpcAuthorizeLayer, GrpcRefusal};
pub use require::{
    RequireClaim, RequireClientAuthentication, RequirePolicy, RequirePolicyLayer, RequireRole,
};
pub use validate_access_token::{ValidateAccessToken, ValidateAccessTokenLayer};
