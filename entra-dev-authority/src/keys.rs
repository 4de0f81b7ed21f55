//! Keys and certificates: the authority's signing keys, client certificates for tests, and
//! the lenient base64 and thumbprint helpers the token endpoint needs.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, PKCS_RSA_SHA256};
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::error::DevAuthorityError;

/// A freshly generated RSA 2048 key with a self-signed certificate, for tests and local
/// development (client certificates, TLS server certificates).
///
/// `Debug` shows the subject and thumbprints, never the private key.
///
/// ```
/// use entra_dev_authority::generate_certificate;
///
/// let cert = generate_certificate("CN=weather-client").unwrap();
/// assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(cert.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert_eq!(cert.x5t.len(), 27); // base64url SHA-1, no padding
/// assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct GeneratedCertificate {
    /// The subject, as given.
    pub subject: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// `x5t`: base64url (no padding) SHA-1 of the certificate DER.
    pub x5t: String,
    /// `x5t#S256`: base64url (no padding) SHA-256 of the certificate DER.
    pub x5t_s256: String,
}

impl GeneratedCertificate {
    /// The certificate followed by the key, as one PEM document (the shape of a `.pem` file
    /// holding both).
    #[must_use]
    pub fn combined_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

impl fmt::Debug for GeneratedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCertificate")
            .field("subject", &self.subject)
            .field("x5t", &self.x5t)
            .field("x5t_s256", &self.x5t_s256)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Generates an RSA 2048 key (aws-lc-rs) and a self-signed certificate for it (rcgen), with
/// the given subject (`"CN=weather-client"`, `"CN=api, O=Contoso"`, or a bare common name).
///
/// # Errors
///
/// [`DevAuthorityError::Invalid`] when the subject has an attribute other than `CN`, `O`, `OU`,
/// `C`, `ST` or `L`, or when key generation fails.
pub fn generate_certificate(subject: &str) -> Result<GeneratedCertificate, DevAuthorityError> {
    let dn = parse_subject(subject)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| rcgen_error(&e))?;
    params.distinguished_name = dn;
    generate(subject, &params)
}

/// Like [`generate_certificate`], valid from `not_before` to `not_after` (for tests of
/// expiry and proactive rotation).
///
/// # Errors
///
/// A [`DevAuthorityError`] when the subject is not a distinguished name or key generation
/// fails.
pub fn generate_certificate_valid(
    subject: &str,
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
) -> Result<GeneratedCertificate, DevAuthorityError> {
    let dn = parse_subject(subject)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| rcgen_error(&e))?;
    params.distinguished_name = dn;
    params.not_before = time::OffsetDateTime::from(not_before);
    params.not_after = time::OffsetDateTime::from(not_after);
    generate(subject, &params)
}

/// Generates a TLS server certificate (RSA 2048, self-signed) for the given names: IP
/// addresses become IP subject alternative names, others DNS names. Hand it to
/// [`DevAuthorityBuilder::tls`](super::DevAuthorityBuilder::tls) and trust `cert_pem` in the
/// client.
///
/// # Errors
///
/// [`DevAuthorityError::Invalid`] when a name is not usable or key generation fails.
pub fn generate_tls_certificate<I, S>(names: I) -> Result<GeneratedCertificate, DevAuthorityError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let names: Vec<String> = names.into_iter().map(Into::into).collect();
    let first = names.first().cloned().unwrap_or_else(|| "localhost".into());
    let mut params = CertificateParams::new(names).map_err(|e| rcgen_error(&e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.clone());
    params.distinguished_name = dn;
    generate(&format!("CN={first}"), &params)
}

fn generate(
    subject: &str,
    params: &CertificateParams,
) -> Result<GeneratedCertificate, DevAuthorityError> {
    let (_, pkcs8) = generate_rsa()?;
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
        &PKCS_RSA_SHA256,
    )
    .map_err(|e| rcgen_error(&e))?;
    let cert = params.self_signed(&key_pair).map_err(|e| rcgen_error(&e))?;
    let cert_der = cert.der().to_vec();
    Ok(GeneratedCertificate {
        subject: subject.to_owned(),
        cert_pem: cert.pem(),
        key_pem: key_pair.serialize_pem(),
        x5t: thumbprint_sha1(&cert_der),
        x5t_s256: thumbprint_sha256(&cert_der),
        cert_der,
        key_der: pkcs8,
    })
}

fn parse_subject(subject: &str) -> Result<DistinguishedName, DevAuthorityError> {
    let invalid = |reason: String| DevAuthorityError::Invalid {
        key: "subject".into(),
        reason,
    };
    let mut dn = DistinguishedName::new();
    let subject = subject.trim();
    if subject.is_empty() {
        return Err(invalid("the subject is empty".into()));
    }
    if !subject.contains('=') {
        dn.push(DnType::CommonName, subject);
        return Ok(dn);
    }
    for part in subject.split(',') {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| invalid(format!("`{part}` is not NAME=value")))?;
        let ty = match name.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            other => {
                return Err(invalid(format!(
                    "unsupported subject attribute `{other}` (use CN, O, OU, C, ST or L)"
                )))
            }
        };
        dn.push(ty, value.trim());
    }
    Ok(dn)
}

fn rcgen_error(e: &rcgen::Error) -> DevAuthorityError {
    DevAuthorityError::Generate {
        what: "a certificate",
        reason: e.to_string(),
    }
}

fn generate_rsa() -> Result<(KeyPair, Vec<u8>), DevAuthorityError> {
    let failed = |step: &str| DevAuthorityError::Generate {
        what: "an RSA key",
        reason: format!("the key could not be {step}"),
    };
    let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| failed("generated"))?;
    let pkcs8 = key
        .as_der()
        .map_err(|_| failed("encoded"))?
        .as_ref()
        .to_vec();
    Ok((key, pkcs8))
}

/// base64url (no padding) SHA-1 of `der`: the `x5t` thumbprint.
pub(crate) fn thumbprint_sha1(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der))
}

/// base64url (no padding) SHA-256 of `der`: the `x5t#S256` thumbprint.
pub(crate) fn thumbprint_sha256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der))
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64 the way a tolerant server must: either alphabet, with or without padding,
/// ignoring whitespace and line breaks. `None` when it is not base64 at all, or longer than
/// `max` characters.
pub(crate) fn decode_b64_lenient(input: &str, max: usize) -> Option<Vec<u8>> {
    if input.len() > max {
        return None;
    }
    let cleaned: String = input
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(cleaned.trim_end_matches('=')).ok()
}

/// Standard base64 (what `x5c` carries).
pub(crate) fn b64_std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// One of the authority's token-signing keys: RSA 2048 with a self-signed certificate, as
/// Entra publishes them. Never printed.
pub(crate) struct SigningKey {
    key: KeyPair,
    kid: String,
    cert_der: Vec<u8>,
    n: String,
    e: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    pub(crate) fn generate() -> Result<Self, DevAuthorityError> {
        let (key, pkcs8) = generate_rsa()?;
        let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
            &PKCS_RSA_SHA256,
        )
        .map_err(|e| rcgen_error(&e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| rcgen_error(&e))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "DevAuthority token signing");
        params.distinguished_name = dn;
        let cert = params.self_signed(&rc_key).map_err(|e| rcgen_error(&e))?;
        let cert_der = cert.der().to_vec();
        let public = key.public_key();
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        Ok(Self {
            kid: thumbprint_sha1(&cert_der),
            key,
            cert_der,
            n,
            e,
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK as Entra publishes it; `issuer` only in the v2 key set.
    pub(crate) fn jwk(&self, issuer: Option<&str>) -> serde_json::Value {
        let mut jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "x5c": [b64_std(&self.cert_der)],
        });
        if let (Some(issuer), Some(map)) = (issuer, jwk.as_object_mut()) {
            map.insert("issuer".into(), issuer.into());
        }
        jwk
    }

    /// Whether `signature` is this key's RS256 signature of `signing_input` (the dev Key
    /// Vault checks bearer tokens with it).
    pub(crate) fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            self.key.public_key().as_ref(),
        )
        .verify(signing_input, signature)
        .is_ok()
    }

    /// Signs `header.payload` with RS256 and returns the compact JWS.
    pub(crate) fn sign_jwt(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, DevAuthorityError> {
        let failed = || DevAuthorityError::Generate {
            what: "a token signature",
            reason: "signing with the authority's key failed".into(),
        };
        let header = serde_json::to_vec(header).map_err(|_| failed())?;
        let claims = serde_json::to_vec(claims).map_err(|_| failed())?;
        let signing_input = format!("{}.{}", b64url(&header), b64url(&claims));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| failed())?;
        Ok(format!("{signing_input}.{}", b64url(&signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base64_accepts_what_clients_send() {
        struct Case {
            name: &'static str,
            input: &'static str,
            expected: Option<&'static [u8]>,
        }
        let cases = [
            Case {
                name: "base64url without padding",
                input: "-_8",
                expected: Some(&[0xfb, 0xff]),
            },
            Case {
                name: "base64url with padding",
                input: "-_8=",
                expected: Some(&[0xfb, 0xff]),
            },
            Case {
                name: "standard alphabet",
                input: "+/8=",
                expected: Some(&[0xfb, 0xff]),
            },
            Case {
                name: "line breaks and spaces",
                input: "QU\r\nJD\n RA==",
                expected: Some(b"ABCD"),
            },
            Case {
                name: "not base64",
                input: "a*b",
                expected: None,
            },
        ];
        for case in cases {
            assert_eq!(
                decode_b64_lenient(case.input, 100).as_deref(),
                case.expected,
                "{}",
                case.name
            );
        }
        assert_eq!(decode_b64_lenient("QUJD", 3), None, "longer than the limit");
    }

    #[test]
    fn subjects() {
        struct Case {
            name: &'static str,
            subject: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                name: "CN only",
                subject: "CN=weather-client",
                ok: true,
            },
            Case {
                name: "several attributes",
                subject: "CN=api, O=Contoso, C=NL",
                ok: true,
            },
            Case {
                name: "bare name",
                subject: "weather-client",
                ok: true,
            },
            Case {
                name: "unknown attribute",
                subject: "CN=a, XX=b",
                ok: false,
            },
            Case {
                name: "empty",
                subject: "  ",
                ok: false,
            },
        ];
        for case in cases {
            assert_eq!(
                parse_subject(case.subject).is_ok(),
                case.ok,
                "{}",
                case.name
            );
        }
    }
}
