//! Prometheus metrics, served as text by `GET /metrics`.

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The service's metrics and the registry that serves them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    records_stored: CounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("etl".to_owned()), None).unwrap_or_else(|_| Registry::new());
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests, by route and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let records_stored = CounterVec::new(
            Opts::new(
                "raw_records_stored_total",
                "Raw records stored, by entity type",
            ),
            &["entity_type"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(records_stored.clone()),
        ] {
            // Names are unique by construction; registering cannot collide.
            let _ = registry.register(collector);
        }
        Self {
            registry,
            http_requests,
            http_duration,
            records_stored,
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method_label(method), route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Counts stored records. Entity types are open-ended, so only those
    /// with a transformer get their own label value; the rest are `other`.
    pub fn records_stored(&self, entity_type: &etl_domain::EntityType, count: usize) {
        let label = entity_type
            .transformer()
            .map_or("other", |kind| kind.as_str());
        self.records_stored
            .with_label_values(&[label])
            .inc_by(count as f64);
    }

    /// The registry (other components register their own metrics here).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// HTTP methods are open-ended (any token is a method): only the standard
/// ones get their own label value, so a client cannot grow `/metrics`.
fn method_label(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    }
}
