//! Tower layers: inbound [`ValidateAccessTokenLayer`] and the authorization layers
//! ([`RequirePolicy`], [`RequireRole`], [`RequireClaim`]); outbound [`AddAccessTokenLayer`].

pub mod add_access_token;
pub mod require;
pub mod validate_access_token;

pub use add_access_token::{AddAccessToken, AddAccessTokenLayer, AddAccessTokenLayerBuilder};
pub use require::{RequireClaim, RequirePolicy, RequireRole};
pub use validate_access_token::{ValidateAccessToken, ValidateAccessTokenLayer};
