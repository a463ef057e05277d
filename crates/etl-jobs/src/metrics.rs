//! Queue figures for `/metrics`.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

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
    /// Each run of a job in this process, by `job_type` and `outcome`
    /// (`completed`, `retrying`, `failed`, `lost`, `handed_back`).
    pub job_duration: HistogramVec,
    /// Runs of jobs in this process, by `job_type` and `outcome`.
    pub jobs_finished: IntCounterVec,
    /// 1 while this process holds the singleton task's lease, else 0.
    pub lease_held: IntGaugeVec,
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
            job_duration: HistogramVec::new(
                HistogramOpts::new(
                    "job_duration_seconds",
                    "How long each run of a job took, claim to commit, by type and outcome",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 900.0,
                ]),
                &["job_type", "outcome"],
            )
            .expect("valid metric"),
            jobs_finished: IntCounterVec::new(
                Opts::new(
                    "jobs_finished_total",
                    "Runs of jobs in this process by type and outcome",
                ),
                &["job_type", "outcome"],
            )
            .expect("valid metric"),
            lease_held: IntGaugeVec::new(
                Opts::new(
                    "lease_held",
                    "1 while this process holds the singleton task's lease (SPEC §12)",
                ),
                &["task"],
            )
            .expect("valid metric"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 10] = [
            Box::new(metrics.published.clone()),
            Box::new(metrics.confirmed.clone()),
            Box::new(metrics.nacked.clone()),
            Box::new(metrics.outbox_backlog.clone()),
            Box::new(metrics.outbox_oldest_age.clone()),
            Box::new(metrics.jobs_by_status.clone()),
            Box::new(metrics.rows_pruned.clone()),
            Box::new(metrics.job_duration.clone()),
            Box::new(metrics.jobs_finished.clone()),
            Box::new(metrics.lease_held.clone()),
        ];
        for collector in collectors {
            // A second registration (tests building two apps on one
            // registry) keeps the first; the figures stay meaningful.
            let _ = registry.register(collector);
        }
        metrics
    }
}

impl QueueMetrics {
    /// Records one run of a job of `job_type` that ended in `outcome`.
    pub fn observe_job(&self, job_type: &str, outcome: &str, elapsed: std::time::Duration) {
        self.job_duration
            .with_label_values(&[job_type, outcome])
            .observe(elapsed.as_secs_f64());
        self.jobs_finished
            .with_label_values(&[job_type, outcome])
            .inc();
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
