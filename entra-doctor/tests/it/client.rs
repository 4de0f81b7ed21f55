//! `entra-doctor client`: the `CallApi` credentials, a token request against the dev
//! authority and its answer explained; an unregistered certificate gets AADSTS700027 with
//! both thumbprints.

use entra_dev_authority::generate_certificate;

use crate::support::{assert_no_secret, doctor, World, CLIENT, SERVICE, TENANT};

fn client_config(world: &World, pem: &str) -> std::path::PathBuf {
    let pem_path = world.write("client.pem", pem);
    world.write(
        "client.json",
        &serde_json::json!({
            "CallApi": {
                "ScopeForAccessToken": format!("api://{SERVICE}/.default"),
                "Instance": world.authority.instance(),
                "TenantId": TENANT,
                "ClientId": CLIENT,
                "ClientCertificates": [{
                    "SourceType": "Path",
                    "CertificateDiskPath": pem_path.to_str().unwrap()
                }]
            }
        })
        .to_string(),
    )
}

/// A line of the private key's base64, to check it never shows.
fn key_line(key_pem: &str) -> String {
    key_pem.lines().nth(1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_certificate_gets_aadsts700027_with_both_thumbprints() {
    let world = World::start().await;
    let stranger = generate_certificate("CN=not-registered").unwrap();
    let config = client_config(&world, &stranger.combined_pem());
    let thumbprints =
        tower_azure_auth::credentials::thumbprints(stranger.cert_pem.as_bytes()).unwrap();
    for json in [false, true] {
        let mut args = vec!["client", "--config", config.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let run = doctor(&args, &[], &world.dir).await;
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let out = &run.stdout;
        assert!(out.contains("AADSTS700027"), "{out}");
        assert!(out.contains(&thumbprints.sha1_hex()), "{out}");
        assert!(out.contains(&stranger.x5t), "{out}");
        assert!(out.contains("Certificates & secrets"), "{out}");
        if json {
            let value: serde_json::Value = serde_json::from_str(out).unwrap();
            assert_eq!(value["credential"]["sha1"], thumbprints.sha1_hex());
            assert_eq!(value["credential"]["sha256"], thumbprints.sha256_hex());
            assert_eq!(value["token"]["aadsts"], 700027);
            assert_eq!(value["exit_code"], 1);
        } else {
            assert!(
                out.contains("✘ token: the authority refused the request: AADSTS700027"),
                "{out}"
            );
            // The library's explanation itself names the certificate in use by both thumbprints.
            let refusal = out.lines().find(|l| l.contains("✘ token:")).unwrap();
            let named = format!(
                "the certificate in use has the thumbprint {} (SHA-1, as the portal shows it; x5t {})",
                thumbprints.sha1_hex(),
                stranger.x5t
            );
            assert!(refusal.contains(&named), "{refusal}");
            assert!(
                out.contains(&format!(
                    "SHA-1   : {} (the thumbprint the Azure portal shows)",
                    thumbprints.sha1_hex()
                )),
                "{out}"
            );
            assert!(
                out.contains(&format!("SHA-256 : {}", thumbprints.sha256_hex())),
                "{out}"
            );
            assert!(out.contains("certificate `CN=not-registered`"), "{out}");
        }
        assert_no_secret(&run, &[&key_line(&stranger.key_pem)], "client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registered_certificate_gets_a_token_which_is_not_shown() {
    let world = World::start().await;
    let config = client_config(&world, &world.registered.combined_pem());
    let run = doctor(
        &["client", "--config", config.to_str().unwrap()],
        &[],
        &world.dir,
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "✔ token acquired for `api://{SERVICE}/.default` (not shown)"
        )),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("eyJ"),
        "a token was printed:\n{}",
        run.stdout
    );
    assert_no_secret(&run, &[&key_line(&world.registered.key_pem)], "client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_is_reported_present_never_shown() {
    let world = World::start().await;
    let config = world.write(
        "secret.json",
        &serde_json::json!({
            "CallApi": {
                "ScopeForAccessToken": format!("api://{SERVICE}/.default"),
                "Instance": world.authority.instance(),
                "TenantId": TENANT,
                "ClientId": CLIENT,
                "ClientSecret": crate::support::CLIENT_SECRET,
            }
        })
        .to_string(),
    );
    for json in [false, true] {
        let mut args = vec!["client", "--config", config.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let run = doctor(&args, &[], &world.dir).await;
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        if !json {
            assert!(
                run.stdout.contains("ClientSecret: present"),
                "{}",
                run.stdout
            );
            assert!(
                run.stdout.contains("Tokens will carry azpacr 1"),
                "{}",
                run.stdout
            );
        }
        assert_no_secret(&run, &[], "secret");
    }
}
