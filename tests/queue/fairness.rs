//! SPEC §12, no tenant starves another: with tenant A's backlog waiting,
//! tenant B's jobs are published and taken round-robin beside A's and
//! finish long before A's backlog does; no tenant ever runs more jobs at
//! once than the cap (half the worker slots by default). Both queue modes.

use std::time::{Duration, Instant};

use etl_tests::TestTenant;

use crate::harness::{Behaviour, Harness, Mode, Recorder};

/// A job's own work: long enough that A's backlog takes a while, short
/// enough for a test.
const WORK: Duration = Duration::from_millis(40);

/// Writes `n` load jobs for `tenant` straight into the table (as a burst of
/// requests would), oldest first, and tells the relay.
fn backlog(h: &Harness, tenant: &TestTenant, n: usize) {
    h.app.execute(&format!(
        "INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, priority)
         SELECT {}, 'load', 'github_prs', '{{\"transformed_data\": []}}', 5
           FROM generate_series(1, {n})",
        tenant.id
    ));
    h.wake();
}

fn completed(h: &Harness, tenant: &TestTenant) -> i64 {
    h.app.count(&format!(
        "SELECT count(*) FROM etl_job_queue WHERE tenant_id = {} AND status = 'completed'",
        tenant.id
    ))
}

/// The most jobs of one tenant seen running at once.
fn running_now(h: &Harness) -> i64 {
    h.app.count(
        "SELECT COALESCE(max(n), 0) FROM (
             SELECT count(*) AS n FROM etl_job_queue WHERE status = 'running' GROUP BY tenant_id) AS r",
    )
}

async fn b_finishes_long_before_a_backlog(mode: Mode) {
    let mut h = Harness::start_fair(mode).await;
    // Four slots: the default cap is two jobs of a tenant at once.
    h.worker("w", Recorder::new(Behaviour::SucceedAfter(WORK)), 4);
    let a = h.tenant.clone();
    let b = h.app.tenant("globex");
    const A_JOBS: usize = 300;
    const B_JOBS: usize = 10;
    backlog(&h, &a, A_JOBS);
    // A's backlog is under way before B's jobs arrive.
    let started = etl_tests::poll_until(Duration::from_secs(30), || async {
        (completed(&h, &a) >= 4).then_some(())
    })
    .await;
    assert!(started.is_some(), "A's jobs run");
    backlog(&h, &b, B_JOBS);
    let since = Instant::now();
    let mut most_running = 0;
    let deadline = since + Duration::from_secs(120);
    while completed(&h, &b) < B_JOBS as i64 {
        most_running = most_running.max(running_now(&h));
        assert!(Instant::now() < deadline, "B's jobs never finished");
        tokio::task::yield_now().await;
    }
    let a_done = completed(&h, &a);
    assert!(
        a_done < (A_JOBS as i64) / 2,
        "B finished while A had {a_done} of {A_JOBS} done: B did not wait behind A's backlog"
    );
    // Sampled all along: no tenant ever ran more than the cap.
    assert!(
        most_running <= 2,
        "a tenant ran {most_running} jobs at once"
    );
    let cap = h
        .app
        .count("SELECT GREATEST(1, sum(slots) / 2) FROM etl_worker_slots WHERE expires_at > now()");
    assert_eq!(cap, 2, "half the four announced slots");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_jobs_finish_long_before_anothers_backlog_amqp() {
    b_finishes_long_before_a_backlog(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_jobs_finish_long_before_anothers_backlog_postgres() {
    b_finishes_long_before_a_backlog(Mode::Postgres).await;
}

async fn the_cap_is_never_exceeded_and_is_reached(mode: Mode) {
    let mut h = Harness::start_fair(mode).await;
    h.worker("w", Recorder::new(Behaviour::SucceedAfter(WORK)), 6);
    let a = h.tenant.clone();
    backlog(&h, &a, 60);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed(&h, &a) < 60 {
        seen.push(running_now(&h));
        assert!(Instant::now() < deadline, "the backlog never finished");
        tokio::task::yield_now().await;
    }
    let most = seen.iter().copied().max().unwrap_or_default();
    // Six slots: three at once, never more, and the cap is used.
    assert_eq!(most, 3, "most jobs of the tenant running at once");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_runs_at_most_half_the_slots_at_once_amqp() {
    the_cap_is_never_exceeded_and_is_reached(Mode::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_runs_at_most_half_the_slots_at_once_postgres() {
    the_cap_is_never_exceeded_and_is_reached(Mode::Postgres).await;
}
