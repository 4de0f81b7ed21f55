//! Client certificates for the interop suite: generated here, written as PEM and PKCS#12.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use entra_dev_authority::{generate_certificate, GeneratedCertificate};

use crate::support::{Context as _, TempDir};

/// Generates an RSA 2048 client certificate (aws-lc-rs key, rcgen certificate).
pub(crate) fn client_certificate(subject: &str) -> Result<GeneratedCertificate, String> {
    generate_certificate(subject).context("generating a client certificate")
}

/// Another self-signed certificate for the same private key as `certificate` (so the same
/// public key, but a different `x5t`), with PEM of the new certificate and the old key.
pub(crate) fn same_key_other_certificate(
    certificate: &GeneratedCertificate,
    subject_cn: &str,
) -> Result<(String, String), String> {
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(certificate.key_der.as_slice()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .context("loading the key into rcgen")?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, subject_cn);
    params.distinguished_name = dn;
    let cert = params
        .self_signed(&key)
        .context("self-signing the certificate")?;
    Ok((cert.pem(), certificate.key_pem.clone()))
}

/// Writes the certificate and its key as one PEM file.
pub(crate) fn write_pem(
    dir: &TempDir,
    name: &str,
    certificate: &GeneratedCertificate,
) -> Result<std::path::PathBuf, String> {
    dir.write(name, certificate.combined_pem())
}

/// Writes the certificate and its key as a password-protected PKCS#12 file (p12-keystore's
/// writer: PBES2 AES-256, HMAC-SHA256), the `.pfx` shape Windows and Key Vault export.
pub(crate) fn write_pkcs12(
    dir: &TempDir,
    name: &str,
    certificate: &GeneratedCertificate,
    password: &str,
) -> Result<std::path::PathBuf, String> {
    let cert = p12_keystore::Certificate::from_der(&certificate.cert_der)
        .context("PKCS#12 certificate")?;
    let key = p12_keystore::PrivateKey::from_der(&certificate.key_der).context("PKCS#12 key")?;
    let chain = p12_keystore::PrivateKeyChain::new(certificate.x5t.as_bytes(), key, [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "client",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let der = store.writer(password).write().context("writing PKCS#12")?;
    dir.write(name, der)
}

/// The SHA-1 thumbprint in hex (what the Azure portal shows and MSAL's `thumbprint` takes).
pub(crate) fn sha1_hex(certificate: &GeneratedCertificate) -> Result<String, String> {
    let raw = URL_SAFE_NO_PAD
        .decode(&certificate.x5t)
        .context("decoding x5t")?;
    Ok(raw.iter().map(|b| format!("{b:02X}")).collect())
}

/// The SHA-256 thumbprint in hex (what MSAL Node's `thumbprintSha256` takes).
pub(crate) fn sha256_hex(certificate: &GeneratedCertificate) -> Result<String, String> {
    let raw = URL_SAFE_NO_PAD
        .decode(&certificate.x5t_s256)
        .context("decoding x5t#S256")?;
    Ok(raw.iter().map(|b| format!("{b:02X}")).collect())
}
