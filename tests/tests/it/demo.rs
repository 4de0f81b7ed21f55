//! The README's first command, `cargo run -p weather-demo`, run in-process: every outcome must
//! be the expected one.

#[tokio::test]
async fn the_weather_demo_gets_the_forecast_and_the_four_refusals() {
    let report = weather_demo::run().await.expect("the demo runs");
    let statuses: Vec<(u16, u16)> = report
        .outcomes
        .iter()
        .map(|o| (o.expected, o.status))
        .collect();
    assert_eq!(
        statuses,
        [(200, 200), (401, 401), (401, 401), (403, 403), (403, 403)],
        "{:#?}",
        report.outcomes
    );
    assert_eq!(report.forecast.as_array().map(Vec::len), Some(5));
    assert!(
        report.outcomes[2].reason.contains("audience"),
        "{}",
        report.outcomes[2].reason
    );
    assert!(
        report.outcomes[3].reason.contains("certificate"),
        "{}",
        report.outcomes[3].reason
    );
    assert!(
        report.outcomes[4].reason.contains("service-api"),
        "{}",
        report.outcomes[4].reason
    );
    assert!(report.all_as_expected());
    // The narration: the certificates with their thumbprints, the registrations, the token
    // and its algorithms (a new user could not tell what the demo had done).
    let steps = report.steps.join("\n");
    for needle in [
        "generated the certificate CN=weather-service",
        "generated the certificate CN=reporting-service",
        "started the dev authority (a local Entra ID) at http://127.0.0.1:",
        "registered the application \"weather service\" (b178f3a5-7588-492a-924f-72d7887b7e48)",
        "registered the application \"reporting\"",
        "started the weather API at http://127.0.0.1:",
        "client assertion signed PS256 with x5t#S256",
        "the access token is signed RS256 by the authority's key ",
    ] {
        assert!(steps.contains(needle), "`{needle}` not in:\n{steps}");
    }
    assert!(!steps.contains("eyJ"), "a token in the narration:\n{steps}");
    assert!(report.elapsed > std::time::Duration::ZERO);
    // The figures read from the API's /metrics at the end: the calls above, by reason.
    let figure = |name: &str, labels: &[&str]| -> Option<f64> {
        report
            .figures
            .iter()
            .find(|line| {
                line.starts_with(&format!("{name}{{"))
                    && labels.iter().all(|label| line.contains(label))
            })
            .and_then(|line| line.rsplit_once(' '))
            .and_then(|(_, value)| value.parse().ok())
    };
    let validations = "tower_azure_auth_validations_total";
    let decisions = "tower_azure_auth_authorization_decisions_total";
    let cases: [(&str, &[&str], f64); 6] = [
        (validations, &[r#"reason="none""#], 3.0),
        (validations, &[r#"reason="invalid_audience""#], 1.0),
        (decisions, &[r#"outcome="allowed""#], 1.0),
        (decisions, &[r#"outcome="denied""#], 2.0),
        (
            "tower_azure_auth_key_refreshes_total",
            &[r#"outcome="success""#],
            1.0,
        ),
        (
            "MsalSuccess_total",
            &[r#"TokenSource="IdentityProvider""#],
            4.0,
        ),
    ];
    for (name, labels, value) in cases {
        assert_eq!(
            figure(name, labels),
            Some(value),
            "{name} {labels:?} in {:#?}",
            report.figures
        );
    }
    assert!(
        report
            .figures
            .iter()
            .all(|line| !line.contains("otel_scope_")),
        "{:#?}",
        report.figures
    );
}
