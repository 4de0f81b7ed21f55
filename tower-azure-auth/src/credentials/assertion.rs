//! Client assertions (RFC 7523 `private_key_jwt`) signed with a [`ClientCertificate`] or
//! any [`Signer`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use super::certificate::ClientCertificate;
use super::signer::{PublicCertificate, Signer, SignerError};
use crate::error::CertificateError;

/// The lifetime of a client assertion: 10 minutes, as MSAL.
pub const ASSERTION_LIFETIME_SECONDS: u64 = 600;

pub use super::signer::AssertionAlgorithm;

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5t: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5c: Option<[&'a str; 1]>,
}

#[derive(Serialize)]
struct Payload<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// What goes into one client assertion.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRequest<'a> {
    /// The client id (`iss` and `sub`).
    pub client_id: &'a str,
    /// The token endpoint URL the assertion is sent to (`aud`), exactly.
    pub audience: &'a str,
    /// The signature algorithm.
    pub algorithm: AssertionAlgorithm,
    /// Whether to send the certificate in `x5c` (for subject name + issuer authentication).
    pub send_x5c: bool,
    /// The current Unix time in seconds (`nbf`, `iat`; `exp` is 10 minutes later).
    pub now: u64,
}

impl ClientCertificate {
    /// Builds and signs a client assertion: header `alg`, `typ: JWT`, `x5t#S256` (PS256) or
    /// `x5t` (RS256), optional `x5c` (an array with the standard base64 DER certificate);
    /// claims `aud`, `iss` = `sub` = client id, a fresh `jti` (UUID v4), integer `nbf`, `iat`,
    /// `exp` (10 minutes).
    ///
    /// The result is a credential: never log it.
    ///
    /// # Errors
    ///
    /// [`CertificateError::Signing`] if the key cannot sign.
    pub fn client_assertion(
        &self,
        request: &AssertionRequest<'_>,
    ) -> Result<String, CertificateError> {
        let mut jwt = signing_input(&self.public_certificate(), request)?;
        let signature = self.sign(
            request.algorithm == AssertionAlgorithm::Ps256,
            jwt.as_bytes(),
        )?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// `base64url(header) "." base64url(payload)` of a client assertion for `certificate`.
fn signing_input(
    certificate: &PublicCertificate,
    request: &AssertionRequest<'_>,
) -> Result<String, CertificateError> {
    let x5c = request.send_x5c.then(|| certificate.x5c_entry());
    let pss = request.algorithm == AssertionAlgorithm::Ps256;
    let header = Header {
        alg: request.algorithm.as_str(),
        typ: "JWT",
        x5t_s256: pss.then(|| certificate.thumbprints().x5t_s256()),
        x5t: (!pss).then(|| certificate.thumbprints().x5t()),
        x5c: x5c.as_deref().map(|x5c| [x5c]),
    };
    let payload = Payload {
        aud: request.audience,
        iss: request.client_id,
        sub: request.client_id,
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: request.now,
        iat: request.now,
        exp: request.now.saturating_add(ASSERTION_LIFETIME_SECONDS),
    };
    // Serializing these plain structs cannot fail.
    let header = serde_json::to_vec(&header).map_err(|_| CertificateError::Signing)?;
    let payload = serde_json::to_vec(&payload).map_err(|_| CertificateError::Signing)?;
    let mut jwt = URL_SAFE_NO_PAD.encode(header);
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(payload));
    Ok(jwt)
}

/// Builds a client assertion as [`ClientCertificate::client_assertion`] does, signed by any
/// [`Signer`] (in-process, Key Vault, an HSM): the header's thumbprint and `x5c` come from
/// [`Signer::certificate`], the signature from [`Signer::sign`] over the signing input.
///
/// The result is a credential: never log it.
///
/// # Errors
///
/// The signer's [`SignerError`].
pub async fn signed_assertion(
    signer: &dyn Signer,
    request: &AssertionRequest<'_>,
) -> Result<String, SignerError> {
    let mut jwt = signing_input(&signer.certificate(), request).map_err(SignerError::Key)?;
    let signature = signer.sign(request.algorithm, jwt.as_bytes()).await?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jwt)
}
