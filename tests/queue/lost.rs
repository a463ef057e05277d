//! SPEC §8: a message the broker loses does not strand its job, and a
//! message naming a job this database does not hold is dead-lettered, never
//! acked silently.

use std::time::Duration;

use etl_tests::poll_until;
use etl_tests::rabbit::rabbitmqctl;

use crate::harness::{Behaviour, Harness, Recorder};

#[tokio::test]
async fn a_job_whose_message_was_purged_is_published_again() {
    let mut h = Harness::start_with_republisher(Duration::from_secs(1)).await;
    let id = h.load_job().await;
    h.wait_for_status(id, "queued").await;
    let vhost = h.vhost.as_ref().expect("amqp");
    let name = vhost.name.clone();
    rabbitmqctl(&["purge_queue", "-p", &name, "etl.load"]);
    assert_eq!(vhost.depth("etl.load"), 0, "the message is gone");
    // Nothing but the republisher can bring it back: the relay published
    // it once and the broker confirmed it.
    let back = poll_until(Duration::from_secs(20), || async {
        (h.vhost.as_ref().map(|v| v.depth("etl.load")) >= Some(1)).then_some(())
    })
    .await;
    assert!(back.is_some(), "the lost job's message was published again");
    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker("w1", recorder.clone(), 1);
    let job = h.wait_for_status(id, "completed").await;
    assert_eq!(job["retry_count"], 0, "a lost message costs no attempt");
    assert_eq!(recorder.runs_of(id), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_message_for_a_job_this_database_lacks_is_dead_lettered() {
    let mut h = Harness::start(crate::harness::Mode::Amqp).await;
    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker("w1", recorder.clone(), 1);
    // Another deployment's job, on the same vhost.
    let foreign = etl_store::jobs::OutboxJob {
        id: 987_654,
        tenant_id: 1,
        job_type: "load".to_owned(),
        entity_type: "github_prs".to_owned(),
        priority: Some(5),
        created_at: chrono::Utc::now().naive_utc(),
        payload: r#"{"transformed_data": [], "load_options": {}}"#.to_owned(),
    };
    h.publish(etl_jobs::outbox::message_for(foreign).expect("message"))
        .await;
    let vhost = h.vhost.as_ref().expect("amqp");
    let dead = poll_until(Duration::from_secs(20), || async {
        (h.vhost.as_ref().map(|v| v.depth("etl.failed")) == Some(1)).then_some(())
    })
    .await;
    assert!(dead.is_some(), "the foreign message went to etl.failed");
    assert_eq!(vhost.depth("etl.load"), 0);
    // Our own jobs go on.
    let ours = h.load_job().await;
    h.wait_for_status(ours, "completed").await;
    assert!(recorder.runs_of(987_654) == 0);
    h.stop().await;
}
