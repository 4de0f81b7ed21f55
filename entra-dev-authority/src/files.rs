//! Writing a [`GeneratedCertificate`] to disk as the dev tools do: the PEM pair or a PKCS#12
//! (`.pfx`) archive, readable by the owner alone (mode `0600` on unix), since both hold the
//! private key.

use std::io::Write as _;
use std::path::Path;

use crate::error::DevAuthorityError;
use crate::keys::GeneratedCertificate;

impl GeneratedCertificate {
    /// The certificate and its private key as a PKCS#12 archive (`.pfx`/`.p12`), encrypted
    /// with `password` (AES-256 with PBKDF2, an HMAC-SHA256 MAC; an empty password is allowed
    /// and is what `CertificatePassword` left out means). `ClientCertificate::from_pkcs12`,
    /// .NET's `X509Certificate2` and `openssl pkcs12` read it.
    ///
    /// ```
    /// use entra_dev_authority::generate_certificate;
    /// use tower_azure_auth::credentials::ClientCertificate;
    ///
    /// let generated = generate_certificate("CN=caller")?;
    /// let pfx = generated.to_pkcs12("s3cret")?;
    /// let loaded = ClientCertificate::from_pkcs12(&pfx, Some("s3cret"))?;
    /// assert_eq!(loaded.der(), generated.cert_der.as_slice());
    /// assert!(ClientCertificate::from_pkcs12(&pfx, Some("wrong")).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Generate`] when the archive cannot be built.
    pub fn to_pkcs12(&self, password: &str) -> Result<Vec<u8>, DevAuthorityError> {
        let failed = |reason: String| DevAuthorityError::Generate {
            what: "a PKCS#12 archive",
            reason,
        };
        let cert = p12_keystore::Certificate::from_der(&self.cert_der)
            .map_err(|e| failed(format!("certificate: {e:?}")))?;
        let key = p12_keystore::PrivateKey::from_der(&self.key_der)
            .map_err(|_| failed("the private key cannot be encoded".into()))?;
        let chain = p12_keystore::PrivateKeyChain::new(b"dev-1".to_vec(), key, [cert]);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            &self.subject,
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        store
            .writer(password)
            .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
            .write()
            .map_err(|e| failed(format!("{e:?}")))
    }

    /// Writes [`combined_pem`](Self::combined_pem) (certificate, then private key) to `path`,
    /// creating its directory, readable and writable by the owner alone (`0600` on unix, also
    /// when the file existed with wider permissions).
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Write`] naming the file.
    pub fn write_pem(&self, path: impl AsRef<Path>) -> Result<(), DevAuthorityError> {
        write_private(path.as_ref(), self.combined_pem().as_bytes())
    }

    /// Writes [`to_pkcs12`](Self::to_pkcs12) with `password` to `path`, as
    /// [`write_pem`](Self::write_pem) does (directory created, mode `0600` on unix).
    ///
    /// # Errors
    ///
    /// [`DevAuthorityError::Write`] naming the file, or the archive's error.
    pub fn write_pkcs12(
        &self,
        path: impl AsRef<Path>,
        password: &str,
    ) -> Result<(), DevAuthorityError> {
        write_private(path.as_ref(), &self.to_pkcs12(password)?)
    }
}

/// Writes `bytes` to `path` (truncating), owner-only on unix.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevAuthorityError> {
    let error = |source| DevAuthorityError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DevAuthorityError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    // `mode` applies only when the file is created: narrow an existing file's too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
    }
    file.write_all(bytes).map_err(error)?;
    file.flush().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_certificate;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_key_files_are_owner_only_and_read_back() {
        let dir =
            std::env::temp_dir().join(format!("dev-authority-files-{}", uuid::Uuid::new_v4()));
        let generated = generate_certificate("CN=files").unwrap();
        let pem = dir.join("nested/caller.pem");
        let pfx = dir.join("caller.pfx");
        let empty = dir.join("empty.pfx");
        generated.write_pem(&pem).unwrap();
        generated.write_pkcs12(&pfx, "pw").unwrap();
        // An existing world-readable file is narrowed as well.
        std::fs::write(&empty, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        generated.write_pkcs12(&empty, "").unwrap();
        #[cfg(unix)]
        for path in [&pem, &pfx, &empty] {
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
        let read = |path: &Path, password| {
            tower_azure_auth::credentials::ClientCertificate::from_file(path, password)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        for certificate in [
            read(&pem, None),
            read(&pfx, Some("pw")),
            read(&empty, None),
            read(&empty, Some("")),
        ] {
            assert_eq!(certificate.der(), generated.cert_der.as_slice());
        }
        let error = generated
            .write_pem(pem.join("inside")) // below a file: no such directory can exist
            .unwrap_err();
        assert!(
            matches!(error, DevAuthorityError::Write { .. }),
            "{error:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
