//! Tower layers: inbound [`ValidateAccessTokenLayer`], the router-wide [`AuthorizeLayer`] and
//! the per-route authorization layers ([`RequirePolicy`], [`RequireRole`], [`RequireClaim`],
//! [`RequireClientAuthentication`]); outbound [`AddAccessTokenLayer`].

pub mod add_access_token;
pub mod authorize;
pub mod require;
pub mod validate_access_token;

pub use add_access_token::{AddAccessToken, AddAccessTokenLayer, AddAccessTokenLayerBuilder};
pub use authorize::{Authorize, AuthorizeLayer};
pub use require::{RequireClaim, RequireClientAuthentication, RequirePolicy, RequireRole};
pub use validate_access_token::{ValidateAccessToken, ValidateAccessTokenLayer};
