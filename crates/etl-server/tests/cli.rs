//! The `etl-server` binary as an operator meets it: settings errors, the
//! `migrate` command, `serve`, `serve --dev`, and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etl_store::test_support::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_etl-server");

/// The binary with a clean environment: only what the test sets.
fn etl_server(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ETL_BIND", "127.0.0.1:0")
        .env("ETL_LOG_FORMAT", "json")
        .stdin(Stdio::null());
    command
}

/// `etl-server worker` on the test's database and vhost.
fn worker_on(db: &TestDatabase, vhost: &etl_tests::rabbit::TestVhost) -> Command {
    let mut command = etl_server(&["worker"]);
    command
        .env("DATABASE_URL", db.url())
        .env("RABBITMQ_URL", vhost.url());
    command
}

fn run_to_end(command: &mut Command) -> Output {
    command.output().expect("running etl-server")
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A secret long enough for HS256 (32 bytes or more).
const LONG_SECRET: &str = "cli-test-secret-of-at-least-32-bytes";

#[test]
fn serve_with_a_jwt_secret_under_32_bytes_refuses_to_start_with_one_line() {
    let db = TestDatabase::migrated();
    let output = run_to_end(
        etl_server(&["serve"])
            .env("DATABASE_URL", db.url())
            .env("ETL_JWT_SECRET", "short-secret"),
    );
    assert!(!output.status.success());
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: ETL_JWT_SECRET: "), "{lines:?}");
    assert!(!lines[0].contains("short-secret"), "never shows the secret");
}

#[test]
fn serve_without_a_jwt_secret_refuses_to_start_with_one_line() {
    let db = TestDatabase::migrated();
    let output = run_to_end(etl_server(&["serve"]).env("DATABASE_URL", db.url()));
    assert!(!output.status.success());
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("ETL_JWT_SECRET"), "{lines:?}");
}

#[test]
fn a_malformed_setting_is_named_in_one_line() {
    for (name, value) in [
        ("DATABASE_URL", "mysql://root@127.0.0.1/etl"),
        ("DATABASE_URL", "nonsense"),
        ("ETL_BIND", "not-an-address"),
        ("ETL_MAX_BODY_BYTES", "lots"),
        ("ETL_QUEUE", "sqs"),
    ] {
        let output = run_to_end(
            etl_server(&["serve"])
                .env("ETL_JWT_SECRET", LONG_SECRET)
                .env(name, value),
        );
        assert!(!output.status.success(), "{name}={value}");
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{name}={value}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!("error: {name}: ")),
            "{lines:?}"
        );
    }
}

#[test]
fn migrate_applies_every_migration_then_reports_up_to_date() {
    let db = TestDatabase::empty();
    let first = run_to_end(etl_server(&["migrate"]).env("DATABASE_URL", db.url()));
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.lines().filter(|l| l.starts_with("applied ")).count() >= 3,
        "{stdout}"
    );
    let again = run_to_end(etl_server(&["migrate"]).env("DATABASE_URL", db.url()));
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "database is up to date"
    );
}

/// Two old completed records and one old failed one, one old completed job.
fn backdated_rows(db: &TestDatabase) {
    use etl_store::SimpleConnection;
    db.connect()
        .batch_execute(
            "INSERT INTO tenants (name) VALUES ('acme');
             INSERT INTO integrations (tenant_id, provider, name) SELECT id, 'jira', 'j' FROM tenants;
             INSERT INTO raw_extraction_data
                    (tenant_id, integration_id, entity_type, raw_data, processing_status, processed_at)
             SELECT t.id, i.id, 'jira_issues', '{}', s, LOCALTIMESTAMP - interval '60 days'
               FROM tenants t JOIN integrations i ON i.tenant_id = t.id,
                    unnest(ARRAY['completed', 'completed', 'failed']) AS s;
             INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, status, completed_at)
             SELECT id, 'extract', 'jira_issues', '{}', 'completed', LOCALTIMESTAMP - interval '60 days'
               FROM tenants;",
        )
        .expect("backdated rows");
}

fn rows_left(db: &TestDatabase) -> i64 {
    use etl_store::test_support::diesel_prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM raw_extraction_data) + (SELECT count(*) FROM etl_job_queue) AS n",
    )
    .get_result::<N>(&mut db.connect())
    .expect("count")
    .n
}

#[test]
fn prune_dry_run_says_what_it_would_delete_then_prune_deletes_it() {
    let db = TestDatabase::migrated();
    backdated_rows(&db);
    let dry = run_to_end(etl_server(&["prune", "--dry-run"]).env("DATABASE_URL", db.url()));
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["raw records: 2", "jobs: 1"]
    );
    assert!(String::from_utf8_lossy(&dry.stderr).contains("dry run"));
    assert_eq!(rows_left(&db), 4, "a dry run deletes nothing");
    let pass = run_to_end(etl_server(&["prune"]).env("DATABASE_URL", db.url()));
    assert!(pass.status.success(), "{pass:?}");
    assert_eq!(
        String::from_utf8_lossy(&pass.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["raw records: 2", "jobs: 1"]
    );
    assert_eq!(rows_left(&db), 1, "the failed record stays");
    let bad = run_to_end(
        etl_server(&["prune"])
            .env("DATABASE_URL", db.url())
            .env("ETL_RETENTION_RAW_DAYS", "a month"),
    );
    assert!(!bad.status.success());
    let lines = stderr_lines(&bad);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("ETL_RETENTION_RAW_DAYS"), "{lines:?}");
}

#[test]
fn migrate_against_an_unreachable_database_fails_with_a_message() {
    let output = run_to_end(
        etl_server(&["migrate"]).env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/etl"),
    );
    assert!(!output.status.success());
    let lines = stderr_lines(&output);
    assert!(
        lines.first().is_some_and(|l| l.starts_with("error: ")),
        "{lines:?}"
    );
}

#[test]
fn help_lists_the_settings() {
    let output = run_to_end(&mut etl_server(&["--help"]));
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for setting in [
        "DATABASE_URL",
        "ETL_JWT_SECRET",
        "ETL_BIND",
        "ETL_QUEUE",
        "ETL_QUEUE_TYPE",
        "ETL_LOG_FORMAT",
    ] {
        assert!(help.contains(setting), "--help mentions {setting}");
    }
}

/// A running server process, killed if the test ends early.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, stdout and stderr interleaved as they came.
    seen: std::cell::RefCell<Vec<String>>,
}

impl Running {
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting etl-server");
        let (sender, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Default::default(),
        }
    }

    /// The first output line containing `needle`, waiting for it if it has
    /// not come yet. (stdout and stderr are read apart, so their lines may
    /// arrive in any order.)
    fn wait_for_line(&self, needle: &str) -> String {
        if let Some(line) = self.seen.borrow().iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.borrow_mut().push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line containing {needle:?}; saw {:#?}",
            self.seen.borrow()
        );
    }

    /// Every line read so far.
    fn all_lines_so_far(&self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.borrow_mut().push(line);
        }
        self.seen.borrow().clone()
    }

    /// Every output line, once the process has closed its output (it has
    /// exited): those seen so far and the rest.
    fn all_output(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.borrow_mut().push(line),
                // Both readers reached the end of their stream.
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.borrow().clone(),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        panic!("etl-server's output never ended");
    }

    /// The address from the "listening on http://…" log line.
    fn address(&self) -> String {
        let line = self.wait_for_line("listening on http://");
        let start = line.find("http://").expect("url in line");
        line[start..]
            .split(|c: char| c == '"' || c.is_whitespace())
            .next()
            .expect("url")
            .to_owned()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("sending SIGTERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "etl-server did not stop after SIGTERM"
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_answers_health_and_ready_and_stops_gracefully_on_sigterm() {
    let db = TestDatabase::empty();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let mut server = Running::start(
        etl_server(&["serve"])
            .env("DATABASE_URL", db.url())
            .env("RABBITMQ_URL", vhost.url())
            .env("ETL_JWT_SECRET", LONG_SECRET),
    );
    let address = server.address();
    let client = reqwest::blocking::Client::new();
    let health = client
        .get(format!("{address}/health"))
        .send()
        .expect("health");
    assert_eq!(health.status(), 200);
    // `serve` applies pending migrations at start and connects to
    // RabbitMQ; /ready answers 200 once both are done.
    wait_until_ready(&address);
    let mut conn = db.connect();
    assert!(
        !etl_store::migrations::has_pending(&mut conn).expect("status"),
        "serve applied the migrations"
    );
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    server.wait_for_line("stopped");
    // A clean stop says so and nothing worse: no connection (RabbitMQ's
    // included) outlives the runtime it uses.
    let complaints: Vec<String> = server
        .all_output()
        .into_iter()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

/// Polls `/ready` until it answers 200, for at most 30 s.
fn wait_until_ready(address: &str) {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{address}/ready"))
        .send()
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "/ready never answered 200");
        std::thread::yield_now();
    }
}

fn token_from(line: &str) -> String {
    let token = line
        .split_whitespace()
        .nth(1)
        .expect("a token after the label")
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {line}");
    token
}

#[test]
fn serve_dev_creates_the_database_seeds_it_and_prints_a_working_token() {
    let db = TestDatabase::reserved();
    // A vhost of its own: on the default one it would take others' jobs.
    let vhost = etl_tests::rabbit::TestVhost::create();
    let server = Running::start(
        etl_server(&["serve", "--dev"])
            .env("DATABASE_URL", db.url())
            .env("RABBITMQ_URL", vhost.url()),
    );
    server.wait_for_line(&format!("created database {}", db.name()));
    token_from(&server.wait_for_line("token "));
    server.wait_for_line("curl");
    // What a second terminal needs.
    assert!(server
        .wait_for_line("DATABASE_URL")
        .contains(&db.name().to_string()));
    let address = server.address();
    wait_until_ready(&address);
    assert!(
        !server
            .all_lines_so_far()
            .iter()
            .any(|l| l.contains("WARNING: another consumer")),
        "no other consumer on a fresh vhost"
    );

    let mut conn = db.connect();
    assert!(!etl_store::migrations::has_pending(&mut conn).expect("status"));
    let seed = etl_store::seed::ensure_demo(&mut conn).expect("seeded");
    assert_eq!(seed.tenant.name, "demo");
    assert_eq!(
        (seed.jira.provider.as_str(), seed.github.provider.as_str()),
        ("jira", "github")
    );
}

#[test]
fn serve_dev_with_a_secret_signs_the_token_for_the_demo_tenant_with_it() {
    let db = TestDatabase::reserved();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let server = Running::start(
        etl_server(&["serve", "--dev"])
            .env("DATABASE_URL", db.url())
            .env("RABBITMQ_URL", vhost.url())
            .env("ETL_JWT_SECRET", LONG_SECRET),
    );
    server.wait_for_line("from ETL_JWT_SECRET");
    let token = token_from(&server.wait_for_line("token "));
    let keys = etl_http::auth::JwtKeys::new(&etl_http::auth::JwtSecret::new(LONG_SECRET));
    let claims = keys.verify(&token).expect("signed with ETL_JWT_SECRET");
    let mut conn = db.connect();
    let seed = etl_store::seed::ensure_demo(&mut conn).expect("seeded");
    assert_eq!(claims.tenant_id, seed.tenant.id);
    drop(server);
}

/// Writes `n` load jobs of one pull request each, as the API would.
fn load_jobs(db: &TestDatabase, n: usize) -> Vec<i32> {
    use etl_domain::{EntityType, JobPriority, JobType};
    use etl_store::jobs::{self, NewJob};
    let mut conn = db.connect();
    let seed = etl_store::seed::ensure_demo(&mut conn).expect("seed");
    (0..n)
        .map(|i| {
            let row = serde_json::json!({"integration_id": seed.github.id, "external_id": i.to_string(),
                                         "state": "open", "repository": "acme/shop"});
            let job = NewJob::new(
                seed.tenant.id,
                JobType::Load,
                &EntityType::parse("github_prs").expect("valid"),
                serde_json::json!({"transformed_data": [row]}),
                JobPriority::default(),
            );
            jobs::insert(&mut conn, &job).expect("job").id
        })
        .collect()
}

/// Waits until every job is completed; returns the jobs.
fn wait_completed(db: &TestDatabase, ids: &[i32]) -> Vec<etl_store::jobs::Job> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = db.connect();
        let jobs: Vec<_> = ids
            .iter()
            .map(|id| {
                etl_store::jobs::find(&mut conn, etl_domain::JobId::new(*id))
                    .expect("query")
                    .expect("job")
            })
            .collect();
        if jobs
            .iter()
            .all(|j| j.status() == etl_domain::JobStatus::Completed)
        {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "jobs never completed: {:?}",
            jobs.iter().map(|j| j.status()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_process_runs_committed_jobs_and_stops_gracefully() {
    let db = TestDatabase::migrated();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let ids = load_jobs(&db, 3);
    let mut worker = Running::start(&mut worker_on(&db, &vhost));
    worker.wait_for_line("worker running");
    for job in wait_completed(&db, &ids) {
        assert_eq!(
            job.result.as_ref().map(|r| r["inserted"].clone()),
            Some(serde_json::json!(1))
        );
    }
    assert_eq!(vhost.depth("etl.load"), 0, "every message acked");
    let status = worker.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn two_worker_processes_share_the_queues_and_run_each_job_once() {
    let db = TestDatabase::migrated();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let start = || Running::start(worker_on(&db, &vhost).env("ETL_WORKER_CONCURRENCY", "2"));
    let (first, second) = (start(), start());
    first.wait_for_line("worker running");
    second.wait_for_line("worker running");
    let ids = load_jobs(&db, 40);
    let jobs = wait_completed(&db, &ids);
    for job in &jobs {
        // A second run of the same job would have found its row inserted
        // already; every job inserted its own row.
        assert_eq!(
            job.result.as_ref().map(|r| r["inserted"].clone()),
            Some(serde_json::json!(1)),
            "job {}",
            job.id
        );
    }
    let workers: std::collections::BTreeSet<_> =
        jobs.iter().filter_map(|j| j.worker.clone()).collect();
    assert_eq!(workers.len(), 2, "both processes took jobs: {workers:?}");
    let mut conn = db.connect();
    let tenant = etl_store::seed::ensure_demo(&mut conn)
        .expect("seed")
        .tenant
        .id;
    let tenant = etl_store::test_support::active_tenant(&mut conn, tenant);
    let rows = etl_store::loaders::list_pull_requests(&mut conn, tenant, None, None, None, 1000)
        .expect("rows");
    assert_eq!(rows.len(), 40);
    assert_eq!(vhost.depth("etl.load"), 0);
}

#[test]
fn postgres_mode_is_ready_without_rabbitmq() {
    let db = TestDatabase::migrated();
    let server = Running::start(
        etl_server(&["serve"])
            .env("DATABASE_URL", db.url())
            .env("ETL_JWT_SECRET", LONG_SECRET)
            .env("ETL_QUEUE", "postgres")
            // Nothing listens there: amqp mode could never be ready.
            .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
    );
    let address = server.address();
    wait_until_ready(&address);
    let body: serde_json::Value = reqwest::blocking::get(format!("{address}/ready"))
        .expect("ready")
        .json()
        .expect("json");
    assert_eq!(body["checks"].get("rabbitmq"), None);
}

#[test]
fn amqp_mode_is_not_ready_while_rabbitmq_is_unreachable() {
    let db = TestDatabase::migrated();
    let server = Running::start(
        etl_server(&["serve"])
            .env("DATABASE_URL", db.url())
            .env("ETL_JWT_SECRET", LONG_SECRET)
            .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
    );
    let address = server.address();
    let response = reqwest::blocking::get(format!("{address}/ready")).expect("ready");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().expect("json");
    assert_eq!(body["checks"]["rabbitmq"], "down");
    // The API itself keeps answering.
    let health = reqwest::blocking::get(format!("{address}/health")).expect("health");
    assert_eq!(health.status(), 200);
}

/// SPEC §8: SIGTERM with a job blocked on a lock: the process exits within
/// the grace plus 5 s, the job is `queued` again with its attempt not
/// counted and its message back on the broker, and it completes after a
/// restart.
#[test]
fn sigterm_hands_a_blocked_job_back_within_the_grace() {
    use etl_store::SimpleConnection as _;
    let db = TestDatabase::migrated();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let ids = load_jobs(&db, 1);
    // The load's upsert needs a lock this session holds.
    let mut blocker = db.connect();
    blocker
        .batch_execute("BEGIN; LOCK TABLE pull_requests IN SHARE MODE")
        .expect("lock");
    let start_worker = || Running::start(worker_on(&db, &vhost).env("ETL_SHUTDOWN_GRACE_S", "2"));
    let mut worker = start_worker();
    let job = |db: &TestDatabase| {
        etl_store::jobs::find(&mut db.connect(), etl_domain::JobId::new(ids[0]))
            .expect("query")
            .expect("job")
    };
    let running = etl_store::test_support::poll_blocking(Duration::from_secs(30), || {
        (job(&db).status() == etl_domain::JobStatus::Running).then_some(())
    });
    assert!(running.is_some(), "the worker took the job");
    let asked = Instant::now();
    let status = worker.terminate();
    let took = asked.elapsed();
    assert!(status.success(), "exit 0, got {status}");
    assert!(took < Duration::from_secs(7), "stopped after {took:?}");
    let handed = job(&db);
    assert_eq!(handed.status(), etl_domain::JobStatus::Queued);
    assert_eq!(handed.retry_count, Some(0), "the attempt is not counted");
    let returned = etl_store::test_support::poll_blocking(Duration::from_secs(10), || {
        (vhost.depth("etl.load") == 1).then_some(())
    });
    assert!(returned.is_some(), "the message is back on the broker");
    blocker.batch_execute("ROLLBACK").expect("unlock");
    drop(worker);
    let _again = start_worker();
    let done = wait_completed(&db, &ids);
    assert_eq!(done[0].retry_count, Some(0));
}

#[test]
fn serve_dev_warns_when_another_consumer_reads_its_queues() {
    let db = TestDatabase::reserved();
    let vhost = etl_tests::rabbit::TestVhost::create();
    // Another deployment's worker on the same vhost.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (_broker, _consumer) = runtime.block_on(async {
        let broker = etl_queue::AmqpConfig::new(vhost.url())
            .connect()
            .await
            .expect("broker");
        let consumer = broker
            .consume(etl_domain::JobType::Transform, "someone-else")
            .await
            .expect("consumer");
        (broker, consumer)
    });
    let server = Running::start(
        etl_server(&["serve", "--dev"])
            .env("DATABASE_URL", db.url())
            .env("RABBITMQ_URL", vhost.url()),
    );
    let warning = server.wait_for_line("WARNING: another consumer");
    assert!(warning.contains("etl.transform"), "{warning}");
}

/// SPEC §8: one record's rows in all its tables commit together. A worker
/// killed (-9) in the middle of a transform job, its rows written to some
/// tables and not yet to others, leaves none of them; the job, rescued,
/// then loads all of them.
#[test]
fn a_worker_killed_mid_transform_leaves_each_records_rows_all_or_none() {
    use etl_store::SimpleConnection as _;
    let db = TestDatabase::migrated();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let mut conn = db.connect();
    let seed = etl_store::seed::ensure_demo(&mut conn).expect("seed");
    // 200 issues, each with 2 histories of 2 items and one without any
    // (which only work_item_histories records), as one transform job.
    conn.batch_execute(&format!(
        "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, raw_data, processing_status)
         SELECT {tenant}, {jira}, 'jira_issues', jsonb_build_object(
                    'id', i::text, 'key', 'K-' || i,
                    'fields', jsonb_build_object('summary', 'Issue ' || i,
                        'status', jsonb_build_object('id', '3', 'statusCategory', jsonb_build_object('key', 'indeterminate')),
                        'created', '2024-01-01T00:00:00.000+0000', 'updated', '2024-01-05T00:00:00.000+0000'),
                    'changelog', jsonb_build_object('total', 3, 'histories', (
                        SELECT jsonb_agg(jsonb_build_object('id', i || '-' || h, 'created', '2024-01-02T00:00:00.000+0000',
                               'items', CASE WHEN h = 3 THEN '[]'::jsonb ELSE jsonb_build_array(
                                   jsonb_build_object('field', 'status', 'from', '1', 'to', '3'),
                                   jsonb_build_object('field', 'labels', 'toString', 'x')) END))
                          FROM generate_series(1, 3) AS h))),
                'processing'
           FROM generate_series(1, 200) AS i;
         INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload)
         SELECT {tenant}, 'transform', 'jira_issues', jsonb_build_object('raw_data_ids', jsonb_agg(id))
           FROM raw_extraction_data;",
        tenant = seed.tenant.id,
        jira = seed.jira.id,
    ))
    .expect("records and their job");
    // The job writes work_items and work_item_changes, then waits for the
    // histories table, which this session holds.
    let mut blocker = db.connect();
    blocker
        .batch_execute("BEGIN; LOCK TABLE work_item_histories IN SHARE MODE")
        .expect("lock");
    let mut worker = Running::start(&mut worker_on(&db, &vhost));
    let waiting = etl_store::test_support::poll_blocking(Duration::from_secs(30), || {
        let mut conn = db.connect();
        let blocked = count_of(
            &mut conn,
            "SELECT count(*) AS n FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND query LIKE '%work_item_histories%'",
        );
        (blocked > 0).then_some(())
    });
    assert!(
        waiting.is_some(),
        "the job reached the histories with the other tables written"
    );
    worker.child.kill().expect("kill -9");
    worker.child.wait().expect("reaped");
    blocker.batch_execute("ROLLBACK").expect("unlock");
    let rows = |conn: &mut etl_store::PgConnection| {
        [
            count_of(conn, "SELECT count(*) AS n FROM work_items"),
            count_of(conn, "SELECT count(*) AS n FROM work_item_changes"),
            count_of(conn, "SELECT count(*) AS n FROM work_item_histories"),
        ]
    };
    // The killed backend's transaction is gone with it (PostgreSQL notices
    // the closed connection); until then its rows were never visible.
    let gone = etl_store::test_support::poll_blocking(Duration::from_secs(30), || {
        let mut conn = db.connect();
        (count_of(
            &mut conn,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%work_item_histories%'
                AND pid <> pg_backend_pid() AND state <> 'idle'",
        ) == 0)
            .then_some(())
    });
    assert!(gone.is_some(), "the killed worker's session ended");
    assert_eq!(
        rows(&mut db.connect()),
        [0, 0, 0],
        "none of any record's rows"
    );
    // The rescuer of the next worker takes the job back (its heartbeat is
    // made old at once rather than waited for) and loads everything.
    db.connect()
        .batch_execute(
            "UPDATE etl_job_queue SET heartbeat_at = now() - interval '1 hour' WHERE status = 'running'",
        )
        .expect("stale heartbeat");
    let _again = Running::start(&mut worker_on(&db, &vhost));
    let all = etl_store::test_support::poll_blocking(Duration::from_secs(60), || {
        (rows(&mut db.connect()) == [200, 800, 200]).then_some(())
    });
    assert!(all.is_some(), "all rows: {:?}", rows(&mut db.connect()));
}

fn count_of(conn: &mut etl_store::PgConnection, sql: &str) -> i64 {
    use etl_store::test_support::diesel_prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .expect(sql)
        .n
}

/// The lease holders of the singleton tasks, by task.
fn lease_holders(db: &TestDatabase) -> std::collections::BTreeMap<String, String> {
    use etl_store::test_support::diesel_prelude::*;
    #[derive(QueryableByName)]
    struct Lease {
        #[diesel(sql_type = diesel::sql_types::Text)]
        task: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        holder: String,
    }
    diesel::sql_query("SELECT task, holder FROM etl_leases WHERE expires_at > now()")
        .load::<Lease>(&mut db.connect())
        .expect("leases")
        .into_iter()
        .map(|l| (l.task, l.holder))
        .collect()
}

/// Whether every singleton task's lease is held by the process `pid`.
fn all_leases_held_by(db: &TestDatabase, pid: u32) -> bool {
    let holders = lease_holders(db);
    let mine = format!("-{pid}#");
    ["janitor", "republisher", "rescuer", "retention"]
        .iter()
        .all(|task| holders.get(*task).is_some_and(|h| h.contains(&mine)))
}

#[test]
fn singleton_tasks_run_in_one_process_and_move_within_30_s_when_it_is_killed() {
    let db = TestDatabase::migrated();
    let vhost = etl_tests::rabbit::TestVhost::create();
    let start = || Running::start(&mut worker_on(&db, &vhost));
    let mut first = start();
    first.wait_for_line("worker running");
    let first_pid = first.child.id();
    let held = etl_store::test_support::poll_blocking(Duration::from_secs(30), || {
        all_leases_held_by(&db, first_pid).then_some(())
    });
    assert!(
        held.is_some(),
        "the first process holds every lease: {:?}",
        lease_holders(&db)
    );
    let mut second = start();
    second.wait_for_line("worker running");
    let second_pid = second.child.id();
    assert!(
        all_leases_held_by(&db, first_pid),
        "a second process does not take a held lease: {:?}",
        lease_holders(&db)
    );
    // kill -9: no chance to give the leases up; they move once expired.
    first.child.kill().expect("kill -9");
    first.child.wait().expect("reaped");
    let moved = etl_store::test_support::poll_blocking(Duration::from_secs(30), || {
        all_leases_held_by(&db, second_pid).then_some(())
    });
    assert!(
        moved.is_some(),
        "the second process holds every lease within 30 s: {:?}",
        lease_holders(&db)
    );
    second.wait_for_line("lease taken");
    // A graceful stop gives the leases up at once.
    let status = second.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert_eq!(lease_holders(&db), Default::default(), "leases given up");
}

#[test]
fn a_jobs_log_lines_carry_its_id_tenant_type_and_creating_request() {
    let db = TestDatabase::migrated();
    let vhost = etl_tests::rabbit::TestVhost::create();
    use etl_store::SimpleConnection;
    let ids = load_jobs(&db, 1);
    db.connect()
        .batch_execute(&format!(
            "UPDATE etl_job_queue SET request_id = 'req-from-the-api' WHERE id = {}",
            ids[0]
        ))
        .expect("stamp");
    let mut worker = Running::start(&mut worker_on(&db, &vhost));
    wait_completed(&db, &ids);
    let line = worker.wait_for_line("job finished");
    let logged: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(logged["fields"]["outcome"], "completed", "{line}");
    let span = &logged["span"];
    assert_eq!(span["name"], "job", "{line}");
    assert_eq!(span["job_id"], ids[0], "{line}");
    assert_eq!(span["job_type"], "load", "{line}");
    assert_eq!(span["request_id"], "req-from-the-api", "{line}");
    let tenant = etl_store::seed::ensure_demo(&mut db.connect())
        .expect("seed")
        .tenant
        .id;
    assert_eq!(span["tenant_id"], tenant, "{line}");
    assert!(worker.terminate().success());
}
