//! Workers, retries, dead-lettering, cancel, retry, rescue, duplicates,
//! several workers and a broker outage, in both queue modes where they
//! apply.

use std::time::Duration;

use etl_tests::{json, poll_until, TcpProxy};
use reqwest::Method;
use serde_json::json;

use crate::harness::{Behaviour, Harness, Mode, Recorder};

async fn completes_once(mode: Mode) {
    let mut h = Harness::start(mode).await;
    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker("w1", recorder.clone(), 2);
    let id = h.load_job().await;
    let job = h.wait_for_status(id, "completed").await;
    assert_eq!(job["result"], json!({"inserted": 1}));
    assert!(job["started_at"].is_string());
    assert!(job["completed_at"].is_string());
    assert_eq!(job["worker"], "w1");
    assert_eq!(recorder.runs_of(id), 1);
    let h = h.stop().await;
    if let Some(vhost) = &h.vhost {
        assert!(
            vhost.depths().iter().all(|(_, n)| *n == 0),
            "acked: {:?}",
            vhost.depths()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_once_and_completes_amqp() {
    completes_once(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_once_and_completes_postgres() {
    completes_once(Mode::Postgres).await;
}

async fn fails_after_max_retries(mode: Mode) {
    let mut h = Harness::start(mode).await;
    let recorder = Recorder::new(Behaviour::AlwaysFail);
    h.worker("w1", recorder.clone(), 1);
    let id = h.load_job().await;
    let job = h.wait_for_status(id, "failed").await;
    assert_eq!(job["retry_count"], 3);
    assert_eq!(job["error_details"]["code"], "database_error");
    assert_eq!(
        recorder.runs_of(id),
        4,
        "one run and max_retries (3) retries"
    );
    if let Some(vhost) = &h.vhost {
        let dead = poll_until(Duration::from_secs(10), || async {
            (vhost.depth("etl.failed") == 1).then_some(())
        })
        .await;
        assert!(
            dead.is_some(),
            "dead-lettered to etl.failed: {:?}",
            vhost.depths()
        );
        let (body, _) = vhost.get("etl.failed").await.expect("the dead letter");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["job_id"], id);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_every_attempt_ends_failed_and_dead_lettered_amqp() {
    fails_after_max_retries(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_every_attempt_ends_failed_postgres() {
    fails_after_max_retries(Mode::Postgres).await;
}

async fn cancelled_never_runs(mode: Mode) {
    let mut h = Harness::start(mode).await;
    let id = h.load_job().await;
    if mode == Mode::Amqp {
        h.wait_for_status(id, "queued").await;
    }
    let cancel = h
        .app
        .authed(
            Method::POST,
            &format!("/api/v1/etl/jobs/{id}/cancel"),
            &h.tenant,
        )
        .send()
        .await
        .expect("request");
    assert_eq!(cancel.status(), 200);
    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker("w1", recorder.clone(), 1);
    // A later job runs: by then the cancelled one's message has been seen.
    let later = h.load_job().await;
    h.wait_for_status(later, "completed").await;
    if let Some(vhost) = &h.vhost {
        let drained = poll_until(Duration::from_secs(10), || async {
            (vhost.depth("etl.load") == 0).then_some(())
        })
        .await;
        assert!(drained.is_some());
    }
    assert_eq!(recorder.runs_of(id), 0, "a cancelled job never runs");
    assert_eq!(h.job(id).await["status"], "cancelled");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_never_run_amqp() {
    cancelled_never_runs(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_never_run_postgres() {
    cancelled_never_runs(Mode::Postgres).await;
}

async fn retry_runs_again(mode: Mode) {
    let mut h = Harness::start(mode).await;
    let recorder = Recorder::new(Behaviour::FailFirstPermanently);
    h.worker("w1", recorder.clone(), 1);
    let id = h.load_job().await;
    let failed = h.wait_for_status(id, "failed").await;
    assert_eq!(
        failed["retry_count"], 0,
        "a permanent failure is not retried"
    );
    let retried = h
        .app
        .authed(
            Method::POST,
            &format!("/api/v1/etl/jobs/{id}/retry"),
            &h.tenant,
        )
        .send()
        .await
        .expect("request");
    assert_eq!(retried.status(), 200);
    h.wait_for_status(id, "completed").await;
    assert_eq!(recorder.runs_of(id), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_sends_a_failed_job_round_again_amqp() {
    retry_runs_again(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_sends_a_failed_job_round_again_postgres() {
    retry_runs_again(Mode::Postgres).await;
}

/// Makes a job look as if a worker took it and died: running, with a
/// heartbeat long gone.
fn kill_worker_of(h: &Harness, id: i64, retry_count: i64) {
    let updated = h.app.execute(&format!(
        "UPDATE etl_job_queue SET status = 'running', worker = 'dead-worker', started_at = now(),
                heartbeat_at = now() - interval '1 hour', retry_count = {retry_count}
          WHERE id = {id}"
    ));
    assert_eq!(updated, 1);
}

async fn rescue(mode: Mode) {
    let mut h = Harness::start(mode).await;
    // A job taken by a worker that then died: rescued, run again.
    let id = h.load_job().await;
    if mode == Mode::Amqp {
        h.wait_for_status(id, "queued").await;
    }
    kill_worker_of(&h, id, 0);
    let rescued = etl_jobs::rescuer::rescue_once(&h.app.db.pool(), &Harness::rescuer_config())
        .await
        .expect("rescue");
    assert_eq!(rescued, 1);
    let job = h.job(id).await;
    assert_eq!(job["retry_count"], 1, "a rescue counts as an attempt");
    assert_eq!(job["error_details"]["code"], "worker_lost");
    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker("w2", recorder.clone(), 1);
    h.wait_for_status(id, "completed").await;
    assert_eq!(recorder.runs_of(id), 1);

    // A job that killed its worker on every attempt ends failed.
    let doomed = h.load_job().await;
    h.wait_for_status(doomed, "completed").await;
    kill_worker_of(&h, doomed, 3);
    etl_jobs::rescuer::rescue_once(&h.app.db.pool(), &Harness::rescuer_config())
        .await
        .expect("rescue");
    let job = h.job(doomed).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_details"]["code"], "worker_lost");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_rescued_and_counts_an_attempt_amqp() {
    rescue(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_rescued_and_counts_an_attempt_postgres() {
    rescue(Mode::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_of_a_finished_job_changes_nothing() {
    let mut h = Harness::start(Mode::Amqp).await;
    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker("w1", recorder.clone(), 1);
    let id = h.load_job().await;
    let done = h.wait_for_status(id, "completed").await;
    // Publish the same job's message again, as a relay that died before its
    // bookkeeping would.
    let job = {
        let mut conn = h.app.db.connect();
        etl_store::jobs::find_outbox(
            &mut conn,
            etl_domain::JobId::new(i32::try_from(id).expect("id")),
        )
        .expect("query")
        .expect("job")
    };
    h.publish(etl_jobs::outbox::message_for(job).expect("message"))
        .await;
    let vhost = h.vhost.as_ref().expect("amqp");
    let drained = poll_until(Duration::from_secs(10), || async {
        (vhost.depth("etl.load") == 0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "the duplicate was consumed");
    // Give the worker the time to (not) act on it, then compare.
    let later = h.load_job().await;
    h.wait_for_status(later, "completed").await;
    assert_eq!(recorder.runs_of(id), 1);
    assert_eq!(h.job(id).await, done);
    h.stop().await;
}

async fn two_workers(mode: Mode) {
    let mut h = Harness::start(mode).await;
    let first = Recorder::new(Behaviour::Succeed);
    let second = Recorder::new(Behaviour::Succeed);
    h.worker("w1", first.clone(), 2);
    h.worker("w2", second.clone(), 2);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(h.load_job().await);
    }
    for id in &ids {
        h.wait_for_status(*id, "completed").await;
    }
    for id in &ids {
        assert_eq!(
            first.runs_of(*id) + second.runs_of(*id),
            1,
            "job {id} ran exactly once"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_process_each_job_once_amqp() {
    two_workers(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_process_each_job_once_postgres() {
    two_workers(Mode::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_broker_outage_the_api_answers_and_jobs_are_published_once_after() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().expect("address")).await;
    let h = Harness::start_with_broker(Mode::Amqp, Some(&proxy.address.to_string())).await;
    let warm = h.load_job().await;
    h.wait_for_status(warm, "queued").await;

    proxy.cut();
    let down = poll_until(Duration::from_secs(10), || async {
        (h.app.get("/ready").await.status() == 503).then_some(())
    })
    .await;
    assert!(down.is_some(), "/ready reports RabbitMQ down");
    let ready = json(h.app.get("/ready").await).await;
    assert_eq!(ready["checks"]["rabbitmq"], "down");
    let mut during = Vec::new();
    for _ in 0..10 {
        during.push(h.load_job().await);
    }
    for id in &during {
        assert_eq!(h.job(*id).await["status"], "pending", "waits in the outbox");
    }

    proxy.restore();
    for id in &during {
        h.wait_for_status(*id, "queued").await;
    }
    let vhost = h.vhost.as_ref().expect("amqp");
    assert_eq!(
        vhost.depth("etl.load"),
        11,
        "every job published exactly once"
    );
    let up = poll_until(Duration::from_secs(10), || async {
        (h.app.get("/ready").await.status() == 200).then_some(())
    })
    .await;
    assert!(up.is_some());
    h.stop().await;
}
