//! The APIs' metrics: the OpenTelemetry SDK with the Prometheus exporter, scraped on
//! `/metrics`, or, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OTLP over HTTP (protobuf) to a
//! collector. The validator, the policies and anything else built with [`Metrics::meter`]
//! record into it (the instruments are listed in `tower_azure_auth::telemetry`).

use std::fmt;

use opentelemetry::metrics::Meter;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

/// The environment variable that switches to OTLP (the OpenTelemetry SDK's own).
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Why the metrics pipeline could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The Prometheus exporter could not be registered.
    #[error("cannot set up the Prometheus exporter: {0}")]
    Prometheus(String),
    /// The OTLP exporter could not be built (a malformed endpoint, no HTTP client).
    #[error("cannot set up the OTLP exporter: {0}")]
    Otlp(String),
}

/// A meter provider and its exporter.
#[derive(Clone)]
pub struct Metrics {
    provider: SdkMeterProvider,
    /// The registry `/metrics` renders, for the Prometheus exporter.
    registry: Option<prometheus::Registry>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field(
                "exporter",
                &if self.registry.is_some() {
                    "prometheus"
                } else {
                    "otlp"
                },
            )
            .finish_non_exhaustive()
    }
}

fn resource(service: &'static str) -> Resource {
    Resource::builder().with_service_name(service).build()
}

impl Metrics {
    /// OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the SDK reads it, and the other
    /// `OTEL_EXPORTER_OTLP_*` variables), else Prometheus on `/metrics`.
    ///
    /// # Errors
    ///
    /// When the exporter cannot be built.
    pub fn from_env(service: &'static str) -> Result<Self, MetricsError> {
        match std::env::var(OTLP_ENDPOINT) {
            Ok(endpoint) if !endpoint.trim().is_empty() => Self::otlp(service, None),
            _ => Self::prometheus(service),
        }
    }

    /// The Prometheus exporter, into a registry of its own that [`render`](Self::render)
    /// writes in the text exposition format.
    ///
    /// # Errors
    ///
    /// When the exporter cannot be registered.
    pub fn prometheus(service: &'static str) -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| MetricsError::Prometheus(e.to_string()))?;
        let provider = SdkMeterProvider::builder()
            .with_resource(resource(service))
            .with_reader(exporter)
            .build();
        Ok(Self {
            provider,
            registry: Some(registry),
        })
    }

    /// OTLP over HTTP (protobuf), exported every 60 s (`OTEL_METRIC_EXPORT_INTERVAL`) and on
    /// [`shutdown`](Self::shutdown); to `endpoint` (the collector's base URL, `/v1/metrics`
    /// appended), or where the `OTEL_EXPORTER_OTLP_*` variables say.
    ///
    /// # Errors
    ///
    /// When the exporter cannot be built.
    pub fn otlp(service: &'static str, endpoint: Option<&str>) -> Result<Self, MetricsError> {
        use opentelemetry_otlp::WithExportConfig as _;
        let mut builder = opentelemetry_otlp::MetricExporter::builder().with_http();
        if let Some(endpoint) = endpoint {
            builder =
                builder.with_endpoint(format!("{}/v1/metrics", endpoint.trim_end_matches('/')));
        }
        let exporter = builder
            .build()
            .map_err(|e| MetricsError::Otlp(e.to_string()))?;
        let provider = SdkMeterProvider::builder()
            .with_resource(resource(service))
            .with_reader(PeriodicReader::builder(exporter).build())
            .build();
        Ok(Self {
            provider,
            registry: None,
        })
    }

    /// The `tower-azure-auth` meter: give it to `TokenValidatorBuilder::meter`,
    /// `PoliciesBuilder::meter` and `ConfidentialClientBuilder::meter`.
    #[must_use]
    pub fn meter(&self) -> Meter {
        use opentelemetry::metrics::MeterProvider as _;
        self.provider.meter_with_scope(
            InstrumentationScope::builder("tower-azure-auth")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
    }

    /// The provider, e.g. for `opentelemetry::global::set_meter_provider`.
    #[must_use]
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Whether `/metrics` serves the metrics (Prometheus), rather than OTLP pushing them.
    #[must_use]
    pub fn is_prometheus(&self) -> bool {
        self.registry.is_some()
    }

    /// The Prometheus text exposition of the metrics (`None` with OTLP).
    #[must_use]
    pub fn render(&self) -> Option<String> {
        use prometheus::Encoder as _;
        let registry = self.registry.as_ref()?;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .ok()?;
        String::from_utf8(out).ok()
    }

    /// Exports what is pending (OTLP) and stops the exporter.
    pub fn shutdown(&self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// The content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
