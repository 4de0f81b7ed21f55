//! Microsoft's MSAL for Node (`tests/interop/msal-node/client.mjs`, `@azure/msal-node`
//! pinned in `tests/interop/msal-node/package.json` and locked in its `package-lock.json`)
//! against our `DevAuthority` over TLS (`NODE_EXTRA_CA_CERTS` trusts its certificate).

use std::path::PathBuf;

use entra_dev_authority::{
    generate_tls_certificate, AssertionReuse, DevApi, DevApplication, DevAuthority,
    GeneratedCertificate,
};
use serde_json::Value;
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::TokenValidator;

use crate::certs;
use crate::msal::{serve_weather_api, validator_for};
use crate::support::{ensure, node_with_msal_node, Context as _, Outcome, Suite, TempDir};

const WEATHER_API: &str = "6f8a1c52-0000-4000-8000-00000000b001";
const INVENTORY_API: &str = "6f8a1c52-0000-4000-8000-00000000b002";
const CLIENT: &str = "0b7c5d2e-0000-4000-8000-00000000d002";
const WEATHER_SCOPE: &str = "api://weather/.default";
const INVENTORY_SCOPE: &str = "api://inventory/.default";
/// Not a secret of anything real: the dev authority's registration for this suite.
const SECRET: &str = "msal-node-interop-secret";

struct Fixture {
    authority: DevAuthority,
    /// The same registrations with strict replay checks ([`AssertionReuse::Refuse`]).
    strict: DevAuthority,
    dir: TempDir,
    script: PathBuf,
    ca: PathBuf,
    client: GeneratedCertificate,
    key: PathBuf,
    unregistered: GeneratedCertificate,
    unregistered_key: PathBuf,
    weather: TokenValidator,
    inventory: TokenValidator,
    api_url: String,
}

async fn start_authority(
    tls: &GeneratedCertificate,
    client: &GeneratedCertificate,
    reuse: AssertionReuse,
) -> Result<DevAuthority, String> {
    DevAuthority::builder()
        .tls(tls.cert_pem.clone(), tls.key_pem.clone())
        .assertion_reuse(reuse)
        .api(
            DevApi::new(WEATHER_API)
                .app_id_uri("api://weather")
                .app_roles(["service-api"])
                .token_version(TokenVersion::V2),
        )
        .api(
            DevApi::new(INVENTORY_API)
                .app_id_uri("api://inventory")
                .app_roles(["inventory.read"])
                .token_version(TokenVersion::V2),
        )
        .application(
            DevApplication::new(CLIENT)
                .display_name("msal-node-client")
                .certificate_pem(&client.cert_pem)
                .context("registering the client certificate")?
                .secret(SECRET)
                .grant("api://weather", ["service-api"])
                .grant("api://inventory", ["inventory.read"]),
        )
        .start()
        .await
        .context("starting the dev authority with TLS")
}

async fn setup() -> Result<Fixture, String> {
    let script = node_with_msal_node()?;
    let dir = TempDir::new("interop-msal-node")?;
    let tls = generate_tls_certificate(["127.0.0.1", "localhost"]).context("TLS certificate")?;
    let ca = dir.write("dev-authority-ca.pem", &tls.cert_pem)?;
    let client = certs::client_certificate("CN=msal-node-client")?;
    let key = dir.write("client-key.pem", &client.key_pem)?;
    let unregistered = certs::client_certificate("CN=msal-node-unregistered")?;
    let unregistered_key = dir.write("unregistered-key.pem", &unregistered.key_pem)?;

    let authority = start_authority(&tls, &client, AssertionReuse::WithinLifetime).await?;
    let strict = start_authority(&tls, &client, AssertionReuse::Refuse).await?;
    let weather = validator_for(&authority, &tls.cert_der, WEATHER_API, CLIENT)?;
    let inventory = validator_for(&authority, &tls.cert_der, INVENTORY_API, CLIENT)?;
    let api_url = serve_weather_api(&authority, weather.clone(), WEATHER_API, CLIENT).await?;
    Ok(Fixture {
        authority,
        strict,
        dir,
        script,
        ca,
        client,
        key,
        unregistered,
        unregistered_key,
        weather,
        inventory,
        api_url,
    })
}

/// How client.mjs authenticates.
enum Credential<'a> {
    /// `clientCertificate.thumbprintSha256`: PS256 + `x5t#S256`.
    Sha256(&'a GeneratedCertificate, &'a PathBuf),
    /// `clientCertificate.thumbprint`: RS256 + `x5t`.
    Sha1(&'a GeneratedCertificate, &'a PathBuf),
    /// `clientSecret`.
    Secret,
}

impl Fixture {
    /// Runs client.mjs against `authority` for `scopes` in turn (one application); returns
    /// its JSON and whether it exited 0.
    async fn msal(
        &self,
        authority: &DevAuthority,
        credential: Credential<'_>,
        scopes: &[&str],
    ) -> Result<(Value, bool), String> {
        let mut command = tokio::process::Command::new("node");
        command
            .arg(&self.script)
            .args([
                "--authority",
                &format!("{}{}", authority.instance(), authority.tenant_id()),
            ])
            .args(["--client-id", CLIENT])
            .env("NODE_EXTRA_CA_CERTS", &self.ca)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .current_dir(self.dir.path());
        match credential {
            Credential::Sha256(cert, key) => {
                command
                    .args(["--mode", "sha256", "--key"])
                    .arg(key)
                    .args(["--thumbprint", &certs::sha256_hex(cert)?]);
            }
            Credential::Sha1(cert, key) => {
                command
                    .args(["--mode", "sha1", "--key"])
                    .arg(key)
                    .args(["--thumbprint", &certs::sha1_hex(cert)?]);
            }
            Credential::Secret => {
                command
                    .args(["--mode", "secret"])
                    .env("MSAL_CLIENT_SECRET", SECRET);
            }
        }
        for scope in scopes {
            command.args(["--scope", scope]);
        }
        let output = command.output().await.context("running client.mjs")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
            format!(
                "client.mjs printed no JSON ({e}); exit {}\nstdout: {stdout}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        // knownAuthorities keeps MSAL at home: no instance discovery elsewhere.
        let urls = json["get_requests"].as_array().into_iter().flatten().chain(
            json["token_requests"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| &r["url"]),
        );
        for url in urls {
            ensure!(
                url.as_str()
                    .is_some_and(|u| u.starts_with(&authority.instance())),
                "MSAL Node sent a request outside the dev authority: {url}"
            );
        }
        Ok((json, output.status.success()))
    }

    /// What every accepted token must satisfy: MSAL got it, it validates with Entra's rules
    /// for `validator`'s API, and it says the client and how it authenticated.
    async fn check_token(
        &self,
        result: &Value,
        validator: &TokenValidator,
        role: &str,
        acr: ClientAuthentication,
    ) -> Result<String, String> {
        ensure!(result["ok"] == true, "MSAL got no token: {result}");
        ensure!(
            result["token_type"] == "Bearer",
            "token_type {}",
            result["token_type"]
        );
        let token = result["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();
        let claims = validator
            .validate(&token)
            .await
            .map_err(|e| format!("TokenValidator refused MSAL Node's token: {e}"))?;
        ensure!(
            claims.client_id() == Some(CLIENT),
            "azp {:?}",
            claims.client_id()
        );
        ensure!(
            claims.get_str("azpacr") == Some(acr.as_claim_value()),
            "azpacr {:?}, expected {}",
            claims.get("azpacr"),
            acr.as_claim_value()
        );
        ensure!(claims.has_role(role), "roles {:?}", claims.roles());
        ensure!(
            claims.version() == Some(TokenVersion::V2),
            "ver {:?}",
            claims.get("ver")
        );
        Ok(token)
    }

    /// GET /weatherforecast with the token; the status.
    async fn weather_status(&self, token: &str) -> Result<(u16, String), String> {
        let response = reqwest::Client::new()
            .get(format!("{}/weatherforecast", self.api_url))
            .bearer_auth(token)
            .send()
            .await
            .context("GET /weatherforecast")?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// A certificate token for the weather API: validates, azpacr 2, API 200.
    async fn check_weather_certificate_token(&self, result: &Value) -> Outcome {
        let token = self
            .check_token(
                result,
                &self.weather,
                "service-api",
                ClientAuthentication::Certificate,
            )
            .await?;
        let (status, body) = self.weather_status(&token).await?;
        ensure!(status == 200, "the weather API answered {status}: {body}");
        Ok(())
    }
}

/// The single token request client.mjs recorded, with MSAL's usual form fields.
fn only_token_request(json: &Value) -> Result<&Value, String> {
    let requests = json["token_requests"]
        .as_array()
        .context("token_requests")?;
    ensure!(
        requests.len() == 1,
        "MSAL sent {} token requests: {requests:?}",
        requests.len()
    );
    check_form_fields(&requests[0], true)?;
    Ok(&requests[0])
}

fn check_form_fields(request: &Value, assertion: bool) -> Outcome {
    let fields = &request["form_fields"];
    let credential: &[&str] = if assertion {
        &["client_assertion", "client_assertion_type"]
    } else {
        &["client_secret"]
    };
    for field in ["client_id", "grant_type", "scope"]
        .iter()
        .chain(credential)
    {
        ensure!(
            fields
                .as_array()
                .is_some_and(|f| f.iter().any(|v| v == field)),
            "MSAL did not send {field}; it sent {fields}"
        );
    }
    Ok(())
}

/// MSAL's `errorNo` (the first of `error_codes`), a number or a string of one.
fn code_is(value: &Value, code: u64) -> bool {
    value.as_u64() == Some(code) || value.as_str() == Some(code.to_string().as_str())
}

fn unpadded(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('=')
        .to_owned()
}

pub(crate) async fn run(mut suite: Suite) -> Suite {
    let f = match setup().await {
        Ok(f) => f,
        Err(reason) => {
            suite.abort(
                "setup (node + @azure/msal-node, dev authority with TLS, certificates)",
                &reason,
            );
            return suite;
        }
    };

    suite
        .case(
            "clientCertificate.thumbprintSha256: PS256 + x5t#S256 assertion accepted; token validates; API 200",
            Box::pin(async {
                let (json, ok) = f
                    .msal(&f.authority, Credential::Sha256(&f.client, &f.key), &[WEATHER_SCOPE])
                    .await?;
                ensure!(ok, "client.mjs failed: {json}");
                let metadata = format!(
                    "{}{}/v2.0/.well-known/openid-configuration",
                    f.authority.instance(),
                    f.authority.tenant_id()
                );
                ensure!(
                    json["get_requests"]
                        .as_array()
                        .is_some_and(|urls| urls.iter().any(|u| *u == metadata.as_str())),
                    "MSAL Node did not read {metadata}: {}",
                    json["get_requests"]
                );
                let header = &only_token_request(&json)?["assertion_header"];
                ensure!(header["alg"] == "PS256", "MSAL sent {header}");
                ensure!(
                    unpadded(&header["x5t#S256"]) == f.client.x5t_s256,
                    "x5t#S256 in {header}, expected {}",
                    f.client.x5t_s256
                );
                f.check_weather_certificate_token(&json["results"][0]).await
            }),
        )
        .await;

    suite
        .case(
            "clientCertificate.thumbprint (SHA-1): RS256 + x5t assertion accepted; token validates; API 200",
            Box::pin(async {
                let (json, ok) = f
                    .msal(&f.authority, Credential::Sha1(&f.client, &f.key), &[WEATHER_SCOPE])
                    .await?;
                ensure!(ok, "client.mjs failed: {json}");
                let header = &only_token_request(&json)?["assertion_header"];
                ensure!(header["alg"] == "RS256", "MSAL sent {header}");
                ensure!(
                    unpadded(&header["x5t"]) == f.client.x5t,
                    "x5t in {header}, expected {}",
                    f.client.x5t
                );
                f.check_weather_certificate_token(&json["results"][0]).await
            }),
        )
        .await;

    suite
        .case(
            "two APIs in a row from one ConfidentialClientApplication: the same assertion is sent twice and accepted; both tokens validate; API 200",
            Box::pin(async {
                let (json, ok) = f
                    .msal(
                        &f.authority,
                        Credential::Sha256(&f.client, &f.key),
                        &[WEATHER_SCOPE, INVENTORY_SCOPE],
                    )
                    .await?;
                ensure!(ok, "client.mjs failed: {json}");
                let requests = json["token_requests"].as_array().context("token_requests")?;
                ensure!(requests.len() == 2, "MSAL sent {} token requests", requests.len());
                for request in requests {
                    check_form_fields(request, true)?;
                }
                // What makes this case: MSAL reuses its assertion (same jti, same bytes).
                ensure!(
                    requests[0]["assertion_sha256"] == requests[1]["assertion_sha256"]
                        && requests[0]["assertion_jti"] == requests[1]["assertion_jti"],
                    "MSAL Node signed a new assertion for the second API; this case no longer tests reuse: {requests:?}"
                );
                f.check_weather_certificate_token(&json["results"][0]).await?;
                f.check_token(
                    &json["results"][1],
                    &f.inventory,
                    "inventory.read",
                    ClientAuthentication::Certificate,
                )
                .await?;
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            "clientSecret: token with azpacr 1 validates; the weather API's certificate-only policy answers 403",
            Box::pin(async {
                let (json, ok) = f
                    .msal(&f.authority, Credential::Secret, &[WEATHER_SCOPE])
                    .await?;
                ensure!(ok, "client.mjs failed: {json}");
                let requests = json["token_requests"].as_array().context("token_requests")?;
                ensure!(requests.len() == 1, "MSAL sent {} token requests", requests.len());
                check_form_fields(&requests[0], false)?;
                let token = f
                    .check_token(
                        &json["results"][0],
                        &f.weather,
                        "service-api",
                        ClientAuthentication::Secret,
                    )
                    .await?;
                let (status, body) = f.weather_status(&token).await?;
                ensure!(status == 403, "the weather API answered {status}: {body}");
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            "unregistered certificate: MSAL Node throws a ServerError invalid_client with AADSTS700027",
            Box::pin(async {
                let (json, ok) = f
                    .msal(
                        &f.authority,
                        Credential::Sha256(&f.unregistered, &f.unregistered_key),
                        &[WEATHER_SCOPE],
                    )
                    .await?;
                let result = &json["results"][0];
                ensure!(!ok && result["ok"] == false, "MSAL got a token: {result}");
                let error = &result["error"];
                ensure!(error["name"] == "ServerError", "error in {result}");
                ensure!(error["errorCode"] == "invalid_client", "errorCode in {result}");
                ensure!(code_is(&error["errorNo"], 700027), "errorNo in {result}");
                ensure!(
                    error["errorMessage"]
                        .as_str()
                        .is_some_and(|m| m.contains("AADSTS700027: Client assertion failed signature validation")),
                    "errorMessage in {result}"
                );
                Ok(())
            }),
        )
        .await;

    suite
        .case(
            "two APIs in a row against AssertionReuse::Refuse: the reused assertion gets AADSTS50027 (why reuse is accepted by default)",
            Box::pin(async {
                let (json, ok) = f
                    .msal(
                        &f.strict,
                        Credential::Sha256(&f.client, &f.key),
                        &[WEATHER_SCOPE, INVENTORY_SCOPE],
                    )
                    .await?;
                ensure!(!ok, "both token requests succeeded: {json}");
                ensure!(json["results"][0]["ok"] == true, "first request: {}", json["results"][0]);
                let error = &json["results"][1]["error"];
                ensure!(error["errorCode"] == "invalid_request", "second request: {error}");
                ensure!(code_is(&error["errorNo"], 50027), "second request: {error}");
                ensure!(
                    error["errorMessage"]
                        .as_str()
                        .is_some_and(|m| m.contains("already used (replay)")),
                    "second request: {error}"
                );
                Ok(())
            }),
        )
        .await;

    f.authority.shutdown().await;
    f.strict.shutdown().await;
    suite
}
