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
}
