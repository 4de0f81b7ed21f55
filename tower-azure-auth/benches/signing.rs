//! Client assertion signing by each kind of [`Signer`]: the in-process key, Key Vault's
//! `sign` (the dev authority's vault on 127.0.0.1: one HTTP round trip, a managed identity
//! token from the cache) and, with the `pkcs11` feature, SoftHSM2 (a token in a temporary
//! directory, the key imported with `softhsm2-util`). PS256, 2048-bit RSA.
//!
//! Run: `cargo bench -p tower-azure-auth --features pkcs11 --bench signing`

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use entra_dev_authority::{generate_certificate, DevAuthority, DevKeyVault, GeneratedCertificate};
use tower_azure_auth::clock;
use tower_azure_auth::credentials::{
    signed_assertion, AssertionAlgorithm, AssertionRequest, ClientCertificate, ClientCredential,
    CredentialContext, CredentialSource, KeyVaultCertificate, KeyVaultSigning,
    ManagedIdentityCredential, Signer,
};
use tower_azure_auth::HttpClient;

const CLIENT: &str = "b178f3a5-7588-492a-924f-72d7887b7e48";
const IDENTITY: &str = "5a9f0c1e-0000-4000-8000-000000000009";
const AUDIENCE: &str =
    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";

fn request() -> AssertionRequest<'static> {
    AssertionRequest {
        client_id: CLIENT,
        audience: AUDIENCE,
        algorithm: AssertionAlgorithm::Ps256,
        send_x5c: false,
        now: 1_700_000_000,
    }
}

fn signer_of(credential: ClientCredential) -> Arc<dyn Signer> {
    match credential {
        ClientCredential::Signer(signer) => signer,
        _ => panic!("expected a signer"),
    }
}

async fn key_vault(certificate: &GeneratedCertificate) -> (DevAuthority, Arc<dyn Signer>) {
    let authority = DevAuthority::builder()
        .managed_identity(IDENTITY)
        .key_vault(DevKeyVault::new().non_exportable_certificate("Bench", certificate))
        .start()
        .await
        .unwrap();
    let identity = ManagedIdentityCredential::builder()
        .imds_endpoint(authority.imds_endpoint())
        .client_id(Some(IDENTITY))
        .build()
        .unwrap();
    let source = KeyVaultSigning::new(
        KeyVaultCertificate::new(&authority.vault_url(), "Bench", Arc::new(identity)).unwrap(),
    );
    let context = CredentialContext::new(HttpClient::new().unwrap(), clock::system());
    let signer = signer_of(source.load(&context).await.unwrap());
    (authority, signer)
}

#[cfg(feature = "pkcs11")]
fn softhsm(certificate: &GeneratedCertificate) -> Arc<dyn Signer> {
    use std::process::Command;
    let module = "/usr/lib/softhsm/libsofthsm2.so";
    let dir = std::env::temp_dir().join(format!("taa-bench-softhsm-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let key = dir.join("key.pem");
    std::fs::write(&key, &certificate.key_pem).unwrap();
    std::fs::write(dir.join("pin"), "1234").unwrap();
    std::fs::write(dir.join("cert.pem"), &certificate.cert_pem).unwrap();
    for args in [
        vec![
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--so-pin",
            "5678",
            "--pin",
            "1234",
        ],
        vec![
            "--import",
            key.to_str().unwrap(),
            "--token",
            "bench",
            "--label",
            "bench",
            "--id",
            "01",
            "--pin",
            "1234",
        ],
    ] {
        let status = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(&args)
            .output()
            .expect("softhsm2-util is missing: run scripts/interop-setup.sh");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    std::fs::remove_file(&key).unwrap();
    let source =
        tower_azure_auth::credentials::Pkcs11Source::new(module, "bench", "bench", dir.join("pin"))
            .certificate_path(dir.join("cert.pem"));
    let context = CredentialContext::new(HttpClient::new().unwrap(), clock::system());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    signer_of(runtime.block_on(source.load(&context)).unwrap())
}

#[cfg(feature = "pkcs11")]
fn hsm_signers(certificate: &GeneratedCertificate) -> Vec<(&'static str, Arc<dyn Signer>)> {
    vec![("softhsm2", softhsm(certificate))]
}

#[cfg(not(feature = "pkcs11"))]
fn hsm_signers(_: &GeneratedCertificate) -> Vec<(&'static str, Arc<dyn Signer>)> {
    Vec::new()
}

fn signing(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let generated = generate_certificate("CN=bench").unwrap();
    let in_process: Arc<dyn Signer> =
        Arc::new(ClientCertificate::from_pem(generated.combined_pem().as_bytes()).unwrap());
    let (_authority, vault) = runtime.block_on(key_vault(&generated));

    let mut group = c.benchmark_group("assertion_signing_ps256");
    group.measurement_time(Duration::from_secs(5));
    let mut signers = vec![("in_process", in_process), ("key_vault_local", vault)];
    signers.extend(hsm_signers(&generated));
    for (name, signer) in signers {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(signed_assertion(signer.as_ref(), black_box(&request())))
                    .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
