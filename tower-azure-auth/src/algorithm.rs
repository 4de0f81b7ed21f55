//! [`SignatureAlgorithm`]: the token signature algorithms a validator may accept. At the
//! bottom of the crate so that configuration (which reads `ValidAlgorithms`) and validation
//! (which verifies) share one vocabulary.

use std::fmt;

/// A JWS signature algorithm the validator can verify with the authority's RSA keys
/// ([`TokenValidatorBuilder::algorithms`](crate::validation::TokenValidatorBuilder::algorithms)).
///
/// Only RSA algorithms exist here: Entra ID signs with RS256, other OpenID Connect
/// authorities may use PS256 and the larger hashes. `none` and HMAC (`HS256`…) cannot be
/// expressed, so they can never be accepted. Names from configuration (`ValidAlgorithms`)
/// are read by [`AzureAdOptions::signature_algorithms`](crate::config::AzureAdOptions::signature_algorithms).
///
/// ```
/// use tower_azure_auth::SignatureAlgorithm;
///
/// assert_eq!(SignatureAlgorithm::Ps256.as_str(), "PS256");
/// assert_eq!(SignatureAlgorithm::default(), SignatureAlgorithm::Rs256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// `RS256`: RSASSA-PKCS1-v1_5 with SHA-256, what Entra ID signs with (the default).
    #[default]
    Rs256,
    /// `RS384`: RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// `RS512`: RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// `PS256`: RSASSA-PSS with SHA-256.
    Ps256,
    /// `PS384`: RSASSA-PSS with SHA-384.
    Ps384,
    /// `PS512`: RSASSA-PSS with SHA-512.
    Ps512,
}

impl SignatureAlgorithm {
    /// Every algorithm, in the order of their JOSE names.
    pub const ALL: [Self; 6] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
    ];

    /// The JOSE `alg` name (`RS256`…).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
