//! Our client and API against oidc-provider, an independent OpenID provider.

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use tower_azure_auth::credentials::{ClientCertificate, ConfidentialClient, TokenError};
use tower_azure_auth::error::error_chain;
use tower_azure_auth::{Authority, Claims, TokenValidator};

use crate::certs;
use crate::oidc_provider::{Client, ClientAuth, OidcProvider};
use crate::support::{ensure, workspace_binary, Context as _, Outcome, Service, Suite, TempDir};

/// A weather API under test: a binary of the workspace with the examples' command line
/// (`--listen ADDR`, `AzureAd__…` environment, prints `listening on http://ADDR`).
struct ApiUnderTest {
    name: &'static str,
    binary: &'static str,
}

/// The weather APIs the cases run against. Another framework is one more line, e.g.
/// `ApiUnderTest { name: "actix", binary: "weather-api-actix" },`.
const APIS: &[ApiUnderTest] = &[
    ApiUnderTest {
        name: "axum",
        binary: "weather-api-axum",
    },
    ApiUnderTest {
        name: "actix",
        binary: "weather-api-actix",
    },
];

const TENANT: &str = "9b5ec7a3-4c3e-4f0e-9f62-3c6a1c0de001";
/// The weather API's client id: the audience of `api://weather` tokens.
const WEATHER_API: &str = "6f8a1c52-2f0d-4a4e-8c43-0c4f0e7a0001";
const WEATHER_RESOURCE: &str = "api://weather";
const WEATHER_SCOPE: &str = "api://weather/.default";
const OTHER_API: &str = "2d0c4f7e-5b1a-4c3e-9e1a-7d2f0b9c0002";
const OTHER_RESOURCE: &str = "api://other";
const OTHER_SCOPE: &str = "api://other/.default";
/// `private_key_jwt` with a certificate's public key.
const CERT_CLIENT: &str = "0b7c5d2e-8f4a-4a4b-9c55-1e2d3f4a0003";
/// `private_key_jwt` registered with `x5c`; the assertion's `x5t` must name it.
const X5T_CLIENT: &str = "7e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f0004";
/// `client_secret_post`.
const SECRET_CLIENT: &str = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b0005";
const SECRET: &str = "interop-secret-value";
const PFX_PASSWORD: &str = "interop-pfx-password";

const ALL_ROLES: &[(&str, &[&str])] = &[
    (WEATHER_RESOURCE, &["service-api"]),
    (OTHER_RESOURCE, &["service-api"]),
];

struct Fixture {
    provider: OidcProvider,
    dir: TempDir,
    pem: std::path::PathBuf,
    pfx: std::path::PathBuf,
    x5t_pem: std::path::PathBuf,
    x5t_same_key_other_cert: std::path::PathBuf,
    unregistered_pem: std::path::PathBuf,
    validator: TokenValidator,
}

fn setup() -> Result<Fixture, String> {
    let dir = TempDir::new("interop-oidc")?;
    let client = certs::client_certificate("CN=interop-client")?;
    let pem = certs::write_pem(&dir, "client.pem", &client)?;
    let pfx = certs::write_pkcs12(&dir, "client.pfx", &client, PFX_PASSWORD)?;
    let x5t_client = certs::client_certificate("CN=interop-x5t-client")?;
    let x5t_pem = certs::write_pem(&dir, "x5t-client.pem", &x5t_client)?;
    let (other_cert, same_key) =
        certs::same_key_other_certificate(&x5t_client, "interop-x5t-client-reissued")?;
    let x5t_same_key_other_cert = dir.write(
        "x5t-same-key-other-cert.pem",
        format!("{other_cert}{same_key}"),
    )?;
    let unregistered = certs::client_certificate("CN=interop-unregistered")?;
    let unregistered_pem = certs::write_pem(&dir, "unregistered.pem", &unregistered)?;

    let provider = OidcProvider::start(
        &dir,
        TENANT,
        &[(WEATHER_RESOURCE, WEATHER_API), (OTHER_RESOURCE, OTHER_API)],
        &[
            Client {
                client_id: CERT_CLIENT,
                auth: ClientAuth::PrivateKeyJwt(&pem),
                roles: ALL_ROLES,
            },
            Client {
                client_id: X5T_CLIENT,
                auth: ClientAuth::PrivateKeyJwtX5t(&x5t_pem),
                roles: ALL_ROLES,
            },
            Client {
                client_id: SECRET_CLIENT,
                auth: ClientAuth::Secret(SECRET),
                roles: ALL_ROLES,
            },
        ],
    )?;
    let validator = TokenValidator::builder(
        Authority::oidc(provider.issuer()).context("the oidc-provider authority")?,
    )
    .client_id(WEATHER_API)
    .build()
    .context("a validator for oidc-provider tokens")?;
    Ok(Fixture {
        provider,
        dir,
        pem,
        pfx,
        x5t_pem,
        x5t_same_key_other_cert,
        unregistered_pem,
        validator,
    })
}

impl Fixture {
    fn client(
        &self,
        client_id: &str,
        certificate: ClientCertificate,
    ) -> Result<ConfidentialClient, String> {
        ConfidentialClient::builder(client_id)
            .authority(Authority::oidc(self.provider.issuer()).context("authority")?)
            .certificate(certificate)
            .build()
            .context("building the confidential client")
    }

    fn secret_client(&self) -> Result<ConfidentialClient, String> {
        ConfidentialClient::builder(SECRET_CLIENT)
            .authority(Authority::oidc(self.provider.issuer()).context("authority")?)
            .client_secret(SECRET)
            .build()
            .context("building the secret client")
    }

    fn pem_client(&self) -> Result<ConfidentialClient, String> {
        let pem = std::fs::read(&self.pem).context("reading the client PEM")?;
        self.client(
            CERT_CLIENT,
            ClientCertificate::from_pem(&pem).context("loading the client PEM")?,
        )
    }

    async fn token(&self, client: &ConfidentialClient, scope: &str) -> Result<String, String> {
        client
            .acquire_token_for_client(&[scope])
            .await
            .map(|t| t.secret().to_owned())
            .map_err(|e| {
                self.provider
                    .service
                    .explain(format!("no token for {scope}: {}", error_chain(&e)))
            })
    }
}

/// The JOSE header of a JWT (not verified: for `kid`/`alg` assertions only).
pub(crate) fn jose_header(token: &str) -> Result<Value, String> {
    let segment = token.split('.').next().context("a JWT header segment")?;
    let json = URL_SAFE_NO_PAD
        .decode(segment)
        .context("base64url JWT header")?;
    serde_json::from_slice(&json).context("JSON JWT header")
}

/// The checks every token for the weather API from a certificate client must pass.
fn check_certificate_token(claims: &Claims, client_id: &str, issuer: &str) -> Outcome {
    ensure!(
        claims.issuer() == Some(issuer),
        "iss {:?}, expected {issuer}",
        claims.issuer()
    );
    ensure!(
        claims.audiences().eq([WEATHER_API]),
        "aud {:?}",
        claims.get("aud")
    );
    ensure!(
        claims.client_id() == Some(client_id),
        "azp {:?}",
        claims.client_id()
    );
    ensure!(
        claims.get_str("azpacr") == Some("2"),
        "azpacr {:?}, expected \"2\" (private_key_jwt)",
        claims.get("azpacr")
    );
    ensure!(claims.has_role("service-api"), "roles {:?}", claims.roles());
    ensure!(
        claims.tenant_id() == Some(TENANT),
        "tid {:?}",
        claims.tenant_id()
    );
    Ok(())
}

async fn validate_certificate_token(f: &Fixture, token: &str, client_id: &str) -> Outcome {
    let header = jose_header(token)?;
    ensure!(
        header["alg"] == "RS256",
        "access token alg {}",
        header["alg"]
    );
    let claims = f
        .validator
        .validate(token)
        .await
        .map_err(|e| format!("TokenValidator refused the token: {e}"))?;
    check_certificate_token(&claims, client_id, f.provider.issuer())
}

pub(crate) async fn run(mut suite: Suite) -> Suite {
    let f = match setup() {
        Ok(f) => f,
        Err(reason) => {
            suite.abort("setup (oidc-provider, certificates)", &reason);
            return suite;
        }
    };

    suite
        .case(
            "ConfidentialClient + PEM certificate: token via discovery (RS256 assertion, x5t), valid, Entra claims",
            Box::pin(async {
                let client = f.pem_client()?;
                let token = f.token(&client, WEATHER_SCOPE).await?;
                validate_certificate_token(&f, &token, CERT_CLIENT).await
            }),
        )
        .await;

    suite
        .case(
            "ConfidentialClient + PKCS#12 certificate (password): token accepted by TokenValidator",
            Box::pin(async {
                let certificate = ClientCertificate::from_file(&f.pfx, Some(PFX_PASSWORD))
                    .context("loading the PKCS#12 file")?;
                let token = f
                    .token(&f.client(CERT_CLIENT, certificate)?, WEATHER_SCOPE)
                    .await?;
                validate_certificate_token(&f, &token, CERT_CLIENT).await
            }),
        )
        .await;

    suite
        .case(
            "x5t-registered client: its certificate is accepted; same key under another certificate (other x5t) is refused",
            Box::pin(async {
                let pem = std::fs::read(&f.x5t_pem).context("reading the x5t client PEM")?;
                let client = f.client(X5T_CLIENT, ClientCertificate::from_pem(&pem).context("PEM")?)?;
                let token = f.token(&client, WEATHER_SCOPE).await?;
                validate_certificate_token(&f, &token, X5T_CLIENT).await?;

                let pem = std::fs::read(&f.x5t_same_key_other_cert).context("reading PEM")?;
                let client = f.client(X5T_CLIENT, ClientCertificate::from_pem(&pem).context("PEM")?)?;
                match client.acquire_token_for_client(&[WEATHER_SCOPE]).await {
                    Ok(_) => Err("a certificate whose x5t is not registered got a token".into()),
                    Err(e @ TokenError::Rejected(_)) => {
                        let error = e.authority_error().context("the authority error")?;
                        ensure!(error.error == "invalid_client", "error {:?}", error.error);
                        // The refusal is the x5t check (the key itself is registered).
                        ensure!(
                            f.provider.service.printed("names no registered certificate").await,
                            "{}",
                            f.provider.service.explain("oidc-provider did not log the x5t refusal")
                        );
                        Ok(())
                    }
                    Err(e) => Err(format!("unexpected error: {}", error_chain(&e))),
                }
            }),
        )
        .await;

    for api in APIS {
        if !suite.wants(api.name) {
            continue;
        }
        let service = match start_api(api, f.provider.issuer()) {
            Ok(service) => service,
            Err(reason) => {
                suite.abort(&format!("{}: start the weather API", api.name), &reason);
                continue;
            }
        };
        api_cases(&mut suite, &f, api, &service).await;
    }
    suite
}

fn start_api(api: &ApiUnderTest, issuer: &str) -> Result<Service, String> {
    let mut command = Command::new(workspace_binary(api.binary)?);
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("AzureAd__Authority", issuer)
        .env("AzureAd__ClientId", WEATHER_API)
        .env("AzureAd__AllowedClientIds__0", CERT_CLIENT)
        .env("AzureAd__AllowedClientIds__1", X5T_CLIENT)
        // An allowed caller, so that its refusal (403) is about azpacr alone: the validator
        // refuses callers outside AllowedClientIds with 401 before the policy runs.
        .env("AzureAd__AllowedClientIds__2", SECRET_CLIENT);
    Service::spawn(api.binary, command)
}

async fn call_api(api: &Service, token: Option<&str>) -> Result<(u16, String, String), String> {
    let mut request = reqwest::Client::new().get(format!("{}/weatherforecast", api.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.context("GET /weatherforecast")?;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.context("the body")?;
    Ok((status, challenge, body))
}

fn weather_client(
    f: &Fixture,
    api: &Service,
    certificate: &std::path::Path,
) -> Result<std::process::Output, String> {
    Command::new(workspace_binary("weather-client")?)
        .env("CallApi__ClientId", CERT_CLIENT)
        .env("CallApi__Authority", f.provider.issuer())
        .env("CallApi__ScopeForAccessToken", WEATHER_SCOPE)
        .env("CallApi__ApiBaseAddress", &api.url)
        .env("CallApi__ClientCertificates__0__SourceType", "Path")
        .env(
            "CallApi__ClientCertificates__0__CertificateDiskPath",
            certificate,
        )
        .env_remove("RUST_LOG")
        .current_dir(f.dir.path())
        .output()
        .context("running weather-client")
}

async fn api_cases(suite: &mut Suite, f: &Fixture, api: &ApiUnderTest, service: &Service) {
    let name = api.name;
    let explain = |reason: String| {
        format!(
            "{}\n{}",
            service.explain(reason),
            f.provider.service.explain("")
        )
    };
    let pem_client = match f.pem_client() {
        Ok(client) => client,
        Err(reason) => {
            suite.abort(&format!("{name}: client"), &reason);
            return;
        }
    };

    suite
        .case(
            format!("{name}: certificate token from oidc-provider → 200 with five forecasts"),
            Box::pin(async {
                let token = f.token(&pem_client, WEATHER_SCOPE).await?;
                let (status, challenge, body) = call_api(service, Some(&token)).await?;
                ensure!(
                    status == 200,
                    "{}",
                    explain(format!("status {status} {challenge} {body}"))
                );
                let forecasts: Value = serde_json::from_str(&body).context("forecast JSON")?;
                ensure!(forecasts.as_array().map(Vec::len) == Some(5), "body {body}");
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            format!("{name}: client-secret token (azpacr 1) → 403 from ValidateAccessTokenPolicy"),
            Box::pin(async {
                let token = f.token(&f.secret_client()?, WEATHER_SCOPE).await?;
                let claims = f
                    .validator
                    .validate(&token)
                    .await
                    .map_err(|e| e.to_string())?;
                ensure!(
                    claims.get_str("azpacr") == Some("1"),
                    "azpacr {:?}",
                    claims.get("azpacr")
                );
                let (status, challenge, body) = call_api(service, Some(&token)).await?;
                ensure!(
                    status == 403,
                    "{}",
                    explain(format!("status {status} {challenge} {body}"))
                );
                ensure!(!body.contains(&token), "the 403 body echoes the token");
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            format!("{name}: token for another API (aud {OTHER_API}) → 401 invalid_token naming the audience"),
            Box::pin(async {
                let token = f.token(&pem_client, OTHER_SCOPE).await?;
                let (status, challenge, body) = call_api(service, Some(&token)).await?;
                ensure!(status == 401, "{}", explain(format!("status {status} {challenge} {body}")));
                ensure!(
                    challenge.contains("invalid_token") && challenge.contains("audience"),
                    "WWW-Authenticate: {challenge}"
                );
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            format!("{name}: weather-client binary, registered PEM certificate → prints the forecast, exit 0"),
            Box::pin(async {
                let output = weather_client(f, service, &f.pem)?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                ensure!(
                    output.status.success(),
                    "{}",
                    explain(format!("weather-client failed ({}): {stderr}", output.status))
                );
                let forecasts: Value = serde_json::from_str(&stdout).context("weather-client output")?;
                ensure!(forecasts.as_array().map(Vec::len) == Some(5), "stdout {stdout}");
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            format!("{name}: weather-client binary, unregistered certificate → non-zero exit, one-paragraph invalid_client explanation"),
            Box::pin(async {
                let output = weather_client(f, service, &f.unregistered_pem)?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                ensure!(!output.status.success(), "weather-client succeeded with an unregistered certificate");
                ensure!(output.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&output.stdout));
                ensure!(
                    stderr.contains("refused the client")
                        && stderr.contains("invalid_client")
                        && stderr.contains("interop-unregistered"),
                    "stderr does not explain the refusal: {stderr}"
                );
                ensure!(stderr.trim().lines().count() == 1, "not one paragraph: {stderr}");
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            format!("{name}: oidc-provider rotates its signing key while the API runs → new tokens (new kid) accepted, old still accepted"),
            Box::pin(async {
                let before = f.token(&pem_client, WEATHER_SCOPE).await?;
                let old_kid = jose_header(&before)?["kid"].clone();
                let new_kid = f.provider.rotate_signing_key().await?;
                ensure!(old_kid != new_kid.as_str(), "rotation kept kid {old_kid}");
                let after = pem_client
                    .force_refresh(&[WEATHER_SCOPE])
                    .await
                    .map_err(|e| explain(format!("no token after rotation: {}", error_chain(&e))))?;
                let after = after.secret().to_owned();
                ensure!(
                    jose_header(&after)?["kid"] == new_kid.as_str(),
                    "the new token is not signed with the new key {new_kid}"
                );
                let (status, challenge, body) = call_api(service, Some(&after)).await?;
                ensure!(status == 200, "{}", explain(format!("new-key token: status {status} {challenge} {body}")));
                let (status, challenge, body) = call_api(service, Some(&before)).await?;
                ensure!(status == 200, "{}", explain(format!("old-key token: status {status} {challenge} {body}")));
                Ok(())
            }),
        )
        .await;
}
