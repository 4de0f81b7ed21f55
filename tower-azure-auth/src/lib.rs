#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod authority;
pub mod authorization;
pub mod bearer;
pub mod claims;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod error;
pub mod layers;
pub mod rejection;
pub mod validation;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "reqwest")]
pub mod middleware;
#[cfg(feature = "tower-http")]
pub mod tower_http;

pub use crate::authority::{Authority, HttpClient};
pub use crate::claims::Claims;
pub use crate::config::{AzureAdOptions, CallApiOptions};
pub use crate::error::{AuthError, AuthErrorKind, ConfigError};
pub use crate::validation::TokenValidator;
