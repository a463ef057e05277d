//! What the relay publishes: SPEC §6 bodies and properties, read back with
//! a plain consumer; priority order; the topology's arguments.

use etl_tests::json;
use serde_json::{json, Value};

use etl_domain::JobType;

use crate::harness::{Behaviour, Harness, Mode, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_carry_the_spec_bodies_and_properties() {
    let h = Harness::start(Mode::Amqp).await;
    let t = &h.tenant;
    let extract = json(
        h.app
            .post_json(
                "/api/v1/etl/pipeline",
                t,
                &json!({"entity_type": "jira_issues", "integration_id": t.integration, "payload": {"jql": "x"}, "priority": 2}),
            )
            .await,
    )
    .await["job_id"]
        .as_i64()
        .expect("id");
    let load = h
        .load_job_with(
            json!({"entity_type": "github_prs", "transformed_data": [{"integration_id": t.integration, "external_id": "7", "state": "open"}]}),
        )
        .await;
    let stored = json(
        h.app
            .post_json(
                "/api/v1/etl/raw-data/store",
                t,
                &json!({"integration_id": t.integration, "entity_type": "jira_issues", "raw_data": {"id": "1"}}),
            )
            .await,
    )
    .await;
    let process = json(
        h.app
            .post_json(
                "/api/v1/etl/pipeline/process",
                t,
                &json!({"entity_type": "jira_issues"}),
            )
            .await,
    )
    .await;
    let transform = process["job_ids"][0].as_i64().expect("id");
    for id in [extract, load, transform] {
        let job = h.wait_for_status(id, "queued").await;
        assert!(job["queued_at"].is_string());
    }
    let vhost = h.vhost.as_ref().expect("amqp mode");

    let (body, props) = vhost.get("etl.extract").await.expect("an extract message");
    let body: Value = serde_json::from_slice(&body).expect("json body");
    let created_at = body["created_at"].clone();
    assert!(created_at.is_string());
    assert_eq!(
        body,
        json!({"job_id": extract, "tenant_id": t.id, "job_type": "extract", "entity_type": "jira_issues",
               "integration_id": t.integration, "payload": {"jql": "x"}, "priority": 2, "created_at": created_at})
    );
    assert_eq!(
        props.priority(),
        &Some(9),
        "AMQP priority is 11 - job priority"
    );
    assert_eq!(props.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        props.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(
        props.message_id().as_ref().map(|m| m.as_str().to_owned()),
        Some(extract.to_string())
    );

    let (body, props) = vhost.get("etl.load").await.expect("a load message");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        json!({"job_id": load, "tenant_id": t.id, "job_type": "load", "entity_type": "github_prs",
               "transformed_data": [{"integration_id": t.integration, "external_id": "7", "state": "open"}], "priority": 5})
    );
    assert_eq!(props.priority(), &Some(6));

    let (body, _) = vhost
        .get("etl.transform")
        .await
        .expect("a transform message");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        json!({"job_id": transform, "tenant_id": t.id, "job_type": "transform", "entity_type": "jira_issues",
               "raw_data_ids": [stored["record_id"]], "priority": 5})
    );
    // Nothing else was published.
    assert!(
        vhost.depths().iter().all(|(_, n)| *n == 0),
        "{:?}",
        vhost.depths()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_1_job_queued_behind_priority_9_jobs_is_consumed_first() {
    let mut h = Harness::start(Mode::Amqp).await;
    let mut slow = Vec::new();
    for _ in 0..5 {
        slow.push(h.extract_job(9).await);
    }
    // All five wait in the queue before the urgent one is even written.
    for id in &slow {
        h.wait_for_status(*id, "queued").await;
    }
    let urgent = h.extract_job(1).await;
    h.wait_for_status(urgent, "queued").await;

    let recorder = Recorder::new(Behaviour::Succeed);
    h.worker_for(JobType::Extract, "w1", recorder.clone(), 1);
    for id in slow.iter().chain([&urgent]) {
        h.wait_for_status(*id, "completed").await;
    }
    let order = recorder.runs();
    assert_eq!(
        order.first().map(|id| i64::from(*id)),
        Some(urgent),
        "{order:?}"
    );
    assert_eq!(order.len(), 6, "each job ran once: {order:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_elsewhere_with_other_arguments_is_named() {
    let vhost = etl_tests::rabbit::TestVhost::create();
    {
        let connection = vhost.connect().await;
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_declare(
                "etl.transform",
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("declared without the spec's arguments");
        let _ = connection.close(200, "done").await;
    }
    let error = match etl_queue::AmqpConfig::new(vhost.url()).connect().await {
        Ok(_) => panic!("connecting must fail on the conflicting queue"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("etl.transform"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_publishing_and_jobs_by_status() {
    let h = Harness::start(Mode::Amqp).await;
    let id = h.load_job().await;
    h.wait_for_status(id, "queued").await;
    let text = etl_tests::poll_until(std::time::Duration::from_secs(10), || async {
        let text = h.app.get("/metrics").await.text().await.ok()?;
        text.lines()
            .any(|l| l == "etl_jobs{status=\"queued\"} 1")
            .then_some(text)
    })
    .await
    .expect("the jobs gauge counts the queued job");
    for line in [
        "etl_queue_messages_published_total 1",
        "etl_queue_messages_confirmed_total 1",
        "etl_queue_messages_nacked_total 0",
        "etl_outbox_backlog 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.contains("etl_outbox_oldest_pending_age_seconds"));
    h.stop().await;
}

/// The value of the `/metrics` sample `name` (its labels included).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_time_each_job_and_count_its_outcome_by_type() {
    let mut h = Harness::start(Mode::Postgres).await;
    let good = Recorder::new(Behaviour::Succeed);
    h.worker("good", good, 1);
    let failing = Recorder::new(Behaviour::FailFirstPermanently);
    h.worker_for(JobType::Extract, "failing", failing, 1);
    for _ in 0..3 {
        let id = h.load_job().await;
        h.wait_for_status(id, "completed").await;
    }
    let extract = h.extract_job(5).await;
    h.wait_for_status(extract, "failed").await;
    let completed = "etl_jobs_finished_total{job_type=\"load\",outcome=\"completed\"}";
    let failed = "etl_jobs_finished_total{job_type=\"extract\",outcome=\"failed\"}";
    let text = etl_tests::poll_until(std::time::Duration::from_secs(10), || async {
        let text = h.app.get("/metrics").await.text().await.ok()?;
        (sample(&text, completed) == Some(3.0) && sample(&text, failed) == Some(1.0))
            .then_some(text)
    })
    .await
    .expect("three completed load jobs and one failed extract job counted");
    let runs = "etl_job_duration_seconds_count{job_type=\"load\",outcome=\"completed\"}";
    assert_eq!(sample(&text, runs), Some(3.0), "{text}");
    let took = "etl_job_duration_seconds_sum{job_type=\"load\",outcome=\"completed\"}";
    assert!(sample(&text, took).is_some_and(|s| s > 0.0), "{text}");
    assert!(
        text.contains(
            "etl_job_duration_seconds_bucket{job_type=\"load\",outcome=\"completed\",le=\"0.005\"}"
        ),
        "{text}"
    );
    assert!(text.contains("etl_outbox_oldest_pending_age_seconds"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_which_singleton_leases_this_process_holds() {
    let h =
        Harness::start_with_retention(Mode::Postgres, etl_jobs::pruner::RetentionConfig::default())
            .await;
    let held = "etl_lease_held{task=\"retention\"}";
    let text = etl_tests::poll_until(std::time::Duration::from_secs(10), || async {
        let text = h.app.get("/metrics").await.text().await.ok()?;
        (sample(&text, held) == Some(1.0)).then_some(text)
    })
    .await;
    assert!(text.is_some(), "the only process holds the retention lease");
    let holder = h
        .app
        .count("SELECT count(*) FROM etl_leases WHERE task = 'retention' AND expires_at > now()");
    assert_eq!(holder, 1);
    // Another process holding the lease (here: its row taken over) makes
    // this one stop and say so at its next renewal.
    h.app.execute(
        "UPDATE etl_leases SET holder = 'elsewhere', expires_at = now() + interval '1 hour'
          WHERE task = 'retention'",
    );
    let released = etl_tests::poll_until(std::time::Duration::from_secs(15), || async {
        let text = h.app.get("/metrics").await.text().await.ok()?;
        (sample(&text, held) == Some(0.0)).then_some(())
    })
    .await;
    assert!(released.is_some(), "a lost lease reads 0");
    h.stop().await;
}
