//! `entra-doctor token`: a table of broken tokens and configurations, each with its ✘ line,
//! its fix and its exit code — and for each, the doctor's verdict is the library's
//! (`TokenValidator::validate` and `Policies::authorize` on the same configuration).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use entra_dev_authority::IssueToken;
use tower_azure_auth::authorization::AuthorizationContext;
use tower_azure_auth::claims::{ClientAuthentication, TokenVersion};
use tower_azure_auth::clock::ManualClock;
use tower_azure_auth::config::{AuthorizationOptions, ConfigSource};
use tower_azure_auth::{AzureAdOptions, HttpClient, TokenValidator};

use crate::support::{assert_no_secret, doctor, World, CLIENT, POLICY, SERVICE, TENANT};

const OTHER_TENANT: &str = "11111111-2222-3333-4444-555555555555";

struct Case {
    name: &'static str,
    token: String,
    env: Vec<(&'static str, String)>,
    at: u64,
    jwks: Option<String>,
    policy: Option<&'static str>,
    /// Lines (or parts of lines) the text output must hold: the ✘ line and the fix.
    expect: Vec<String>,
    exit: i32,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn case(name: &'static str, token: String, exit: i32, expect: &[&str]) -> Case {
    Case {
        name,
        token,
        env: Vec::new(),
        at: now(),
        jwks: None,
        policy: None,
        expect: expect.iter().map(|s| (*s).to_owned()).collect(),
        exit,
    }
}

/// A JWKS with one fresh RSA key published under `kid`.
fn foreign_jwks(kid: &str) -> String {
    use aws_lc_rs::signature::KeyPair as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    serde_json::json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }]})
    .to_string()
}

/// What the library says about the case: validation, then the policy.
async fn library_accepts(world: &World, case: &Case) -> bool {
    let source = ConfigSource::from_file(world.config())
        .unwrap()
        .with_env(case.env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let options: AzureAdOptions = source.section("AzureAd").unwrap();
    let mut builder = TokenValidator::from_options(&options)
        .unwrap()
        .clock(Arc::new(ManualClock::at_unix(case.at)));
    if let Some(jwks) = &case.jwks {
        builder = builder
            .static_keys(&world.authority.issuer(TokenVersion::V2), jwks.as_bytes())
            .unwrap();
    }
    let validator = builder.build().unwrap();
    let Ok(claims) = validator.validate(&case.token).await else {
        return false;
    };
    let Some(name) = case.policy else {
        return true;
    };
    let authorization: AuthorizationOptions = source.section("Authorization").unwrap();
    let policies = authorization.policies().unwrap().build();
    match policies.policy(name) {
        Ok(policy) => policies
            .authorize(&policy, &AuthorizationContext::new(&claims))
            .await
            .is_ok(),
        Err(_) => false,
    }
}

async fn run_case(world: &World, case: &Case, json: bool) -> crate::support::Run {
    let config = world.config();
    let at = case.at.to_string();
    let mut args = vec![
        "token",
        case.token.as_str(),
        "--config",
        config.to_str().unwrap(),
        "--at",
        &at,
    ];
    let jwks_path;
    if let Some(jwks) = &case.jwks {
        jwks_path = world.write(&format!("jwks-{}.json", case.name.replace(' ', "-")), jwks);
        args.extend(["--offline", "--jwks", jwks_path.to_str().unwrap()]);
    }
    if let Some(policy) = case.policy {
        args.extend(["--policy", policy]);
    }
    if json {
        args.push("--json");
    }
    let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    doctor(&args, &env, &world.dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_token_gets_its_failed_check_its_fix_and_the_validators_verdict() {
    let world = World::start().await;
    let authority = &world.authority;
    let api = format!("api://{SERVICE}");
    let issue = |request: IssueToken| authority.issue_token(&request).unwrap();
    let base = || IssueToken::new(CLIENT, &api);
    let good = issue(base());
    let kid = authority.signing_key_ids().last().cloned().unwrap();
    let published = HttpClient::new()
        .unwrap()
        .get_json::<serde_json::Value>(&authority.jwks_uri().parse().unwrap())
        .await
        .unwrap()
        .to_string();
    let payload = good.split('.').nth(1).unwrap().to_owned();
    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let short_lived = issue(base().lifetime(std::time::Duration::from_secs(600)));
    let exp = now() + 600;

    let mut cases = vec![
        Case {
            policy: Some(POLICY),
            ..case("a good token passes the policy", good.clone(), 0, &[
                "✔ signature", "✔ audience", "✔ claim `roles` must contain one of [service-api]",
                "Verdict: ✔ the API accepts this token and the policy allows it",
            ])
        },
        Case {
            jwks: Some(published.clone()),
            ..case("a good token passes offline", good.clone(), 0, &["keys: the file", "✔ signature", "Verdict: ✔"])
        },
        Case {
            env: vec![("AzureAd__Audience", SERVICE.to_owned())],
            ..case("v1 token, v2 audience expected", issue(base().version(TokenVersion::V1)), 1, &[
                "✘ audience: the audience is not accepted",
                "this is a v1 token (ver 1.0",
                "set accessTokenAcceptedVersion to 2 in the API's app manifest",
            ])
        },
        case("wrong tenant", issue(base().claim("tid", OTHER_TENANT).claim("iss", format!("{}{OTHER_TENANT}/v2.0", authority.instance()))), 1, &[
            "✘ issuer: the issuer is not accepted",
            &format!("wrong tenant: the token comes from tenant {OTHER_TENANT}, the API is configured for {TENANT}"),
        ]),
        case("wrong issuer host", issue(base().claim("iss", format!("https://evil.example.com/{TENANT}/v2.0"))), 1, &[
            "✘ issuer: the issuer is not accepted",
            "the token was issued by another authority (host evil.example.com",
        ]),
        Case {
            at: exp + 400,
            ..case("expired beyond the leeway", short_lived.clone(), 1, &[
                "✘ lifetime: the token expired at",
                "more than the 300 s of clock skew allowed (AzureAd:ClockSkewSeconds): request a new token",
            ])
        },
        Case {
            at: exp + 100,
            ..case("expired within the leeway", short_lived.clone(), 0, &[
                "✔ lifetime",
                "s ago; it passes only because of the 300 s of clock skew allowed",
                "Verdict: ✔",
            ])
        },
        Case {
            at: exp + 100,
            env: vec![("AzureAd__ClockSkewSeconds", "0".to_owned())],
            ..case("expired without leeway", short_lived.clone(), 1, &[
                "✘ lifetime: the token expired at",
                "more than the 0 s of clock skew allowed",
            ])
        },
        Case {
            at: now() - 3600,
            ..case("not yet valid", good.clone(), 1, &["✘ lifetime: the token", "the token is not valid yet"])
        },
        Case {
            jwks: Some(foreign_jwks(&kid)),
            ..case("wrong key under the same kid", good.clone(), 1, &[
                "✘ signature: the signature is invalid",
                "the signature does not match the key with this kid in the file",
            ])
        },
        Case {
            jwks: Some(foreign_jwks("another-kid")),
            ..case("unknown kid", good.clone(), 1, &[
                "✘ signature: the signing key was not found",
                "no key with this kid in the file",
                "the JWKS file may be stale",
            ])
        },
        case("alg none", unsigned, 1, &[
            "✘ signature: the algorithm 'none' is not accepted",
            "`alg: none` means the token is not signed",
        ]),
        case("malformed token", "not.a-token".to_owned(), 1, &[
            "✘ signature: a JWT has 3 dot-separated parts; this token has 2",
            "this is not a compact JWT",
            "– lifetime: not run",
        ]),
        Case {
            policy: Some(POLICY),
            ..case("missing role", issue(base().roles(["reader"])), 1, &[
                "✘ claim `roles` must contain one of [service-api]",
                "the caller lacks the application role",
                "Verdict: ✘ the token is valid, but the policy refuses it: 403 Forbidden",
            ])
        },
        Case {
            policy: Some(POLICY),
            ..case("azpacr 1", issue(base().client_authentication(ClientAuthentication::Secret)), 1, &[
                "✘ the client must authenticate",
                "`azpacr` is 1: the caller used a client secret; the policy requires a certificate",
            ])
        },
        Case {
            policy: Some(POLICY),
            ..case("scope-only token on a role policy", issue(base().roles(Vec::<String>::new()).claim("scp", "Forecast.Read")), 1, &[
                "✘ claim `roles` must contain one of [service-api]",
                "this token has scopes only (scp): it is a delegated (user) token",
            ])
        },
        case("no permission at all", issue(base().roles(Vec::<String>::new())), 1, &[
            "✘ permission: the token has neither a scp nor a roles claim",
            "grant the client an application permission (app role)",
        ]),
        Case {
            policy: Some("Nope"),
            ..case("unknown policy name", good.clone(), 1, &[
                "✘ policy: no policy named `Nope`",
                "known policies: ValidateAccessTokenPolicy",
            ])
        },
        Case {
            env: vec![("AzureAd__AllowedClientIds__0", "33333333-0000-0000-0000-000000000000".to_owned())],
            ..case("azp not allowed", good.clone(), 1, &[
                "✘ client: the client application is not one of the allowed client ids",
                &format!("the calling application ({CLIENT}) is not in AzureAd:AllowedClientIds"),
            ])
        },
    ];
    assert!(cases.len() >= 12);
    for case in cases.drain(..) {
        let run = run_case(&world, &case, false).await;
        let all = format!("{}\n{}", run.stdout, run.stderr);
        for line in &case.expect {
            assert!(
                all.contains(line.as_str()),
                "{}: `{line}` missing from:\n{all}",
                case.name
            );
        }
        assert_eq!(run.code, case.exit, "{}: exit code\n{all}", case.name);
        assert_eq!(
            run.code == 0,
            library_accepts(&world, &case).await,
            "{}: the doctor's verdict is not the library's\n{all}",
            case.name
        );
        assert_no_secret(&run, &[], case.name);
        let json = run_case(&world, &case, true).await;
        let value: serde_json::Value = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}", case.name, json.stdout));
        assert_eq!(json.code, case.exit, "{}: --json exit code", case.name);
        assert_eq!(value["ok"], case.exit == 0, "{}", case.name);
        assert_eq!(value["exit_code"], case.exit, "{}", case.name);
        assert_no_secret(&json, &[], case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_names_each_check_and_reports_secrets_as_present() {
    let world = World::start().await;
    let token = world
        .authority
        .issue_token(&IssueToken::new(CLIENT, format!("api://{SERVICE}")).version(TokenVersion::V1))
        .unwrap();
    let config = world.config();
    let run = doctor(
        &[
            "token",
            &token,
            "--config",
            config.to_str().unwrap(),
            "--json",
        ],
        &[("AzureAd__Audience", SERVICE)],
        &world.dir,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["command"], "token");
    assert_eq!(value["accepted"], false);
    assert_eq!(value["configuration"]["client_secret"], "present");
    assert_eq!(value["claims"]["ver"], "1.0");
    let names: Vec<&str> = value["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "size",
            "signature",
            "lifetime",
            "issuer",
            "audience",
            "client",
            "permission",
            "revocation"
        ]
    );
    let audience = &value["checks"][4];
    assert_eq!(audience["outcome"], "failed");
    assert_eq!(audience["error"]["kind"], "invalid_audience");
    assert!(audience["fix"]
        .as_str()
        .unwrap()
        .contains("accessTokenAcceptedVersion"));
    assert_eq!(value["error"]["status"], 401);
    assert_no_secret(&run, &[], "json");
    // No colour codes when the output is not a terminal.
    let text = doctor(
        &["token", &token, "--config", config.to_str().unwrap()],
        &[],
        &world.dir,
    )
    .await;
    assert!(!text.stdout.contains('\x1b'), "{}", text.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_standard_input_and_the_api_command() {
    let world = World::start().await;
    let token = world
        .authority
        .issue_token(&IssueToken::new(CLIENT, format!("api://{SERVICE}")))
        .unwrap();
    let config = world.config();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_entra-doctor"))
        .args(["token", "-", "--config", config.to_str().unwrap()])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("Bearer {token}\n").as_bytes())
            .await
            .unwrap();
    }
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("Verdict: ✔ the API accepts this token"),
        "{stdout}"
    );

    let run = doctor(
        &[
            "api",
            "--config",
            config.to_str().unwrap(),
            "--token",
            &token,
        ],
        &[],
        &world.dir,
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for kid in world.authority.signing_key_ids() {
        assert!(run.stdout.contains(&format!("kid {kid}")), "{}", run.stdout);
    }
    assert!(
        run.stdout.contains(&format!(
            "issuer  : {}",
            world.authority.issuer(TokenVersion::V2)
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("the sample token passes every check"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("signing key(s) the validator uses, fetched"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run, &[], "api");
}
