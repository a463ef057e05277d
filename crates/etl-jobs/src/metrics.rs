//! Queue figures for `/metrics`.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct QueueMetrics {
    pub published: IntCounter,
    pub confirmed: IntCounter,
    pub nacked: IntCounter,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age: Gauge,
    pub jobs_by_status: IntGaugeVec,
    /// Rows retention deleted, by kind (`raw_records`, `jobs`).
    pub rows_pruned: IntCounterVec,
}

impl QueueMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            published: IntCounter::new(
                "queue_messages_published_total",
                "Job messages published to RabbitMQ",
            )
            .expect("valid metric"),
            confirmed: IntCounter::new(
                "queue_messages_confirmed_total",
                "Job messages the broker confirmed",
            )
            .expect("valid metric"),
            nacked: IntCounter::new(
                "queue_messages_nacked_total",
                "Job messages the broker refused or could not route",
            )
            .expect("valid metric"),
            outbox_backlog: IntGauge::new(
                "outbox_backlog",
                "Jobs written but not yet published (pending)",
            )
            .expect("valid metric"),
            outbox_oldest_age: Gauge::new(
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest pending job",
            )
            .expect("valid metric"),
            jobs_by_status: IntGaugeVec::new(Opts::new("jobs", "Jobs by status"), &["status"])
                .expect("valid metric"),
            rows_pruned: IntCounterVec::new(
                Opts::new(
                    "retention_rows_pruned_total",
                    "Finished rows deleted past their retention (SPEC §11)",
                ),
                &["kind"],
            )
            .expect("valid metric"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.published.clone()),
            Box::new(metrics.confirmed.clone()),
            Box::new(metrics.nacked.clone()),
            Box::new(metrics.outbox_backlog.clone()),
            Box::new(metrics.outbox_oldest_age.clone()),
            Box::new(metrics.jobs_by_status.clone()),
            Box::new(metrics.rows_pruned.clone()),
        ];
        for collector in collectors {
            // A second registration (tests building two apps on one
            // registry) keeps the first; the figures stay meaningful.
            let _ = registry.register(collector);
        }
        metrics
    }
}

/// Refreshes the outbox and job-status gauges every `every` until
/// `shutdown`.
pub async fn refresh(
    pool: etl_store::PgPool,
    metrics: QueueMetrics,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use etl_domain::JobStatus;
    while !*shutdown.borrow() {
        let figures = crate::db::db(&pool, |conn| {
            Ok((
                etl_store::jobs::outbox_backlog(conn)?,
                etl_store::jobs::count_by_status(conn)?,
            ))
        })
        .await;
        if let Ok(((backlog, oldest), by_status)) = figures {
            metrics.outbox_backlog.set(backlog);
            metrics.outbox_oldest_age.set(oldest);
            for status in JobStatus::ALL {
                let count = by_status
                    .iter()
                    .find(|(s, _)| s.as_deref() == Some(status.as_str()))
                    .map_or(0, |(_, n)| *n);
                metrics
                    .jobs_by_status
                    .with_label_values(&[status.as_str()])
                    .set(count);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
