//! `ETL_QUEUE_TYPE=quorum` (SPEC §6, §12) on the local broker: the work
//! queues and `etl.failed` are quorum queues, jobs run end to end through
//! them, and a job that fails for good is dead-lettered as with classic
//! queues. (A single node: replication across a cluster is RabbitMQ's, and
//! the README's three-node example is not run here.)

use std::time::Duration;

use etl_queue::{AmqpConfig, QueueType};
use etl_tests::poll_until;
use etl_tests::rabbit::rabbitmqctl;

use crate::harness::{Behaviour, Harness, Recorder};

/// Each queue of the vhost with its type (`classic`, `quorum`).
fn queue_types(vhost: &str) -> Vec<(String, String)> {
    let mut types: Vec<(String, String)> =
        rabbitmqctl(&["list_queues", "-p", vhost, "name", "type"])
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .filter(|(name, _)| name.starts_with("etl."))
            .collect();
    types.sort();
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_carry_jobs_end_to_end_and_dead_letter_failures() {
    let mut h = Harness::start_with_amqp(|vhost| {
        AmqpConfig::new(vhost.url()).with_queue_type(QueueType::Quorum)
    })
    .await;
    h.pipeline_worker("on-quorum");
    let job = h.load_job().await;
    h.wait_for_status(job, "completed").await;
    assert_eq!(h.app.count("SELECT count(*) FROM pull_requests"), 1);
    let vhost = h.vhost.as_ref().expect("amqp").name.clone();
    assert_eq!(
        queue_types(&vhost),
        ["etl.extract", "etl.failed", "etl.load", "etl.transform"]
            .map(|q| (q.to_owned(), "quorum".to_owned()))
            .to_vec()
    );
    // A job that fails for good is dead-lettered into etl.failed.
    h.worker_for(
        etl_domain::JobType::Extract,
        "failing",
        Recorder::new(Behaviour::FailFirstPermanently),
        1,
    );
    let doomed = h.extract_job(5).await;
    h.wait_for_status(doomed, "failed").await;
    let vhost = h.vhost.as_ref().expect("amqp");
    let dead = poll_until(Duration::from_secs(10), || async {
        (vhost.depth("etl.failed") == 1).then_some(())
    })
    .await;
    assert!(dead.is_some(), "dead-lettered: {:?}", vhost.depths());
    let (body, _) = vhost.get("etl.failed").await.expect("the dead letter");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["job_id"], doomed);
    h.stop().await;
}
