//! The `weather-client` binary with the signing source types: `SourceType: KeyVaultSigning`
//! (the dev authority's vault signs each assertion with a non-exportable key) and
//! `SourceType: Pkcs11` (a key imported into a SoftHSM2 token in a temporary directory with
//! Debian's `softhsm2-util`); both get a forecast from the axum weather API.
#![allow(missing_docs)]

#[cfg(feature = "pkcs11")]
use std::path::Path;
#[cfg(feature = "pkcs11")]
use std::process::Command;

use entra_dev_authority::{generate_certificate, DevKeyVault};

use super::key_vault::{run_client, start};

const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";

fn assert_forecast(output: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let forecast: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(forecast.as_array().map(Vec::len), Some(5), "{forecast}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_vault_signing_configuration_gets_a_forecast() {
    let certificate = generate_certificate("CN=ServiceApiCert").unwrap();
    let setup = start(
        &certificate,
        DevKeyVault::new().non_exportable_certificate("ServiceApiCert", &certificate),
        |authority| {
            format!(
                r#"{{"SourceType": "KeyVaultSigning", "KeyVaultUrl": "{}", "KeyVaultCertificateName": "ServiceApiCert", "ManagedIdentityClientId": "{IDENTITY}"}}"#,
                authority.vault_url()
            )
        },
        "kv-signing",
    )
    .await;
    let output = run_client(&setup, &[]).await;
    assert_forecast(&output);
    let signatures: u64 = setup
        .authority
        .vault_signatures("ServiceApiCert")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(signatures, 1, "the vault signed the assertion");

    // Without the sign permission: the permission is named, exit 1.
    setup.authority.deny_vault_sign(IDENTITY, true);
    let output = run_client(&setup, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for needle in ["HTTP 403", "permission `sign`", "Key Vault Crypto User"] {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
    let _ = std::fs::remove_file(&setup.config);
}

#[cfg(feature = "pkcs11")]
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

#[cfg(feature = "pkcs11")]
fn softhsm_util(conf: &Path, args: &[&str]) {
    let output = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(args)
        .output()
        .expect(
            "softhsm2-util is missing: run scripts/interop-setup.sh (installs Debian's softhsm2)",
        );
    assert!(
        output.status.success(),
        "softhsm2-util {}: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(feature = "pkcs11")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_configuration_gets_a_forecast() {
    assert!(
        Path::new(MODULE).is_file(),
        "SoftHSM2 is missing ({MODULE}): run scripts/interop-setup.sh"
    );
    let dir = std::env::temp_dir().join(format!("weather-client-hsm-{}", std::process::id()));
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let certificate = generate_certificate("CN=ServiceApiCert").unwrap();
    let key_file = dir.join("key.pem");
    let cert_file = dir.join("cert.pem");
    let pin_file = dir.join("pin");
    std::fs::write(&key_file, &certificate.key_pem).unwrap();
    std::fs::write(&cert_file, &certificate.cert_pem).unwrap();
    std::fs::write(&pin_file, "1234-5678\n").unwrap();
    softhsm_util(
        &conf,
        &[
            "--init-token",
            "--free",
            "--label",
            "weather",
            "--so-pin",
            "87654321",
            "--pin",
            "1234-5678",
        ],
    );
    softhsm_util(
        &conf,
        &[
            "--import",
            key_file.to_str().unwrap(),
            "--token",
            "weather",
            "--label",
            "weather-client",
            "--id",
            "01",
            "--pin",
            "1234-5678",
        ],
    );
    std::fs::remove_file(&key_file).unwrap();
    let setup = start(
        &certificate,
        DevKeyVault::new(),
        |_| {
            format!(
                r#"{{"SourceType": "Pkcs11", "Pkcs11Module": "{MODULE}", "Pkcs11TokenLabel": "weather",
                    "Pkcs11KeyLabel": "weather-client", "Pkcs11PinFile": "{}", "CertificateDiskPath": "{}"}}"#,
                pin_file.display(),
                cert_file.display()
            )
        },
        "pkcs11",
    )
    .await;
    let output = run_client(&setup, &[("SOFTHSM2_CONF", conf.as_os_str())]).await;
    assert_forecast(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("1234-5678"),
        "the PIN is never logged: {stderr}"
    );

    // A wrong PIN is explained without showing either PIN.
    std::fs::write(&pin_file, "0000\n").unwrap();
    let output = run_client(&setup, &[("SOFTHSM2_CONF", conf.as_os_str())]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("wrong PIN"), "{stderr}");
    assert!(
        !stderr.contains("1234-5678") && !stderr.contains("0000\n"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&setup.config);
    let _ = std::fs::remove_dir_all(&dir);
}
