//! `cargo xtask bench pipeline --prs [N]`: N pull requests (default 20,000)
//! with 5 commits and 2 reviews each (one a bot's), and the N Jira issues
//! whose keys they name, from raw rows through the whole pipeline (links
//! resolved, figures derived), beside PostgreSQL's own `INSERT … SELECT`
//! doing the same mapping and link resolution into twins of the tables,
//! in one run; the server's peak memory; then `GET /flow-metrics` latency
//! (8 connections) over 100,000 work items and 100,000 pull requests,
//! beside pgbench running its two queries alone.
//!
//! Needs `wrk`, `pgbench` and `psql` on PATH.

use std::path::Path;
use std::time::Instant;

use etl_store::migrations::{self, DatabaseUrl};

use super::pipeline::pipeline_once;
use super::queue::{psql, with_bench_environment};
use super::stats::{pgbench_latency, wrk_latency};
use super::EtlServer;

/// Commits and reviews per pull request.
const COMMITS: u32 = 5;
const REVIEWS: u32 = 2;
/// Rows of each kind `GET /flow-metrics` reads through.
const FLOW_ROWS: u32 = 100_000;
const FLOW_CONNECTIONS: u32 = 8;
const FLOW_SECONDS: u32 = 10;

pub fn prs(root: &Path, n: u32, batch_size: u32) -> anyhow::Result<()> {
    super::require_tools(&["wrk", "pgbench", "psql"])?;
    with_bench_environment(root, &["etl-server"], |db, amqp, _| {
        run(root, n, batch_size, db, amqp)
    })
}

/// The raw records: issues BENCH-i, pull requests naming them (title, or
/// branch, or body), and each pull request's commits and reviews.
fn fresh_raw_records(
    db: &DatabaseUrl,
    tenant: i32,
    jira: i32,
    github: i32,
    n: u32,
) -> anyhow::Result<()> {
    psql(
        db,
        "TRUNCATE pull_request_work_items, pull_request_commits, pull_request_reviews, pull_requests,
                  work_items, work_item_changes, work_item_histories, etl_job_queue, raw_extraction_data",
    )?;
    psql(db, &format!(
        "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data)
         SELECT {tenant}, {jira}, 'jira_issues', (100000 + i)::text, jsonb_build_object(
                    'id', (100000 + i)::text, 'key', 'BENCH-' || i,
                    'fields', jsonb_build_object(
                        'summary', 'Checkout fails for basket ' || i,
                        'project', jsonb_build_object('key', 'BENCH'),
                        'issuetype', jsonb_build_object('name', 'Bug', 'subtask', false),
                        'status', jsonb_build_object('id', '10001', 'name', 'Done', 'statusCategory', jsonb_build_object('key', 'done')),
                        'created', '2024-01-15T10:00:00.000+0000',
                        'updated', '2024-02-01T00:00:00.000+0000',
                        'resolutiondate', '2024-01-20T10:00:00.000+0000'))
           FROM generate_series(1, {n}) AS i;
         INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data)
         SELECT {tenant}, {github}, 'github_prs', (500000 + i)::text, jsonb_build_object(
                    'id', 500000 + i, 'number', i, 'state', 'closed', 'draft', false,
                    'title', CASE WHEN i % 3 = 0 THEN 'BENCH-' || i || ': fix checkout' ELSE 'Fix checkout ' || i END,
                    'body', CASE WHEN i % 3 = 2 THEN 'Closes BENCH-' || i || '.' ELSE 'Faster checkout.' END,
                    'html_url', 'https://github.com/bench/shop/pull/' || i,
                    'merge_commit_sha', md5(i::text) || '00000000',
                    'user', jsonb_build_object('login', 'dev' || (i % 40)),
                    'base', jsonb_build_object('ref', 'main', 'repo', jsonb_build_object('full_name', 'bench/shop')),
                    'head', jsonb_build_object('ref', CASE WHEN i % 3 = 1 THEN 'feature/BENCH-' || i ELSE 'feature/x' || i END,
                                               'sha', md5((-i)::text) || '00000000'),
                    'created_at', '2024-01-16T10:00:00Z', 'updated_at', '2024-01-19T10:00:00Z',
                    'closed_at', '2024-01-19T10:00:00Z', 'merged_at', '2024-01-19T10:00:00Z')
           FROM generate_series(1, {n}) AS i;
         INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data, extraction_metadata)
         SELECT {tenant}, {github}, 'github_pr_commits', md5(i || '-' || c), jsonb_build_object(
                    'sha', md5(i || '-' || c) || '00000000',
                    'author', jsonb_build_object('login', 'dev' || (i % 40)),
                    'commit', jsonb_build_object(
                        'author', jsonb_build_object('name', 'Dev', 'email', 'dev@example.com',
                                                     'date', to_char(timestamptz '2024-01-15 10:00:00+00' + c * interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
                        'committer', jsonb_build_object('name', 'Dev', 'email', 'dev@example.com',
                                                        'date', to_char(timestamptz '2024-01-15 10:00:00+00' + c * interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
                        'message', 'Step ' || c || ' of BENCH-' || i)),
                jsonb_build_object('repository', 'bench/shop', 'pull_number', i)
           FROM generate_series(1, {n}) AS i, generate_series(1, {COMMITS}) AS c;
         INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data, extraction_metadata)
         SELECT {tenant}, {github}, 'github_pr_reviews', (i * 10 + r)::text, jsonb_build_object(
                    'id', i * 10 + r,
                    'user', jsonb_build_object('login', CASE WHEN r = 1 THEN 'ci[bot]' ELSE 'reviewer' || (i % 7) END),
                    'state', CASE WHEN r = 1 THEN 'COMMENTED' ELSE 'APPROVED' END, 'body', 'ok',
                    'submitted_at', to_char(timestamptz '2024-01-16 12:00:00+00' + r * interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    'commit_id', md5((-i)::text) || '00000000'),
                jsonb_build_object('repository', 'bench/shop', 'pull_number', i)
           FROM generate_series(1, {n}) AS i, generate_series(1, {REVIEWS}) AS r;"
    ))?;
    psql(db, "VACUUM ANALYZE")?;
    Ok(())
}

/// PostgreSQL's own mapping of the same raw rows, and the link resolution,
/// into twins of the tables (`LIKE … INCLUDING ALL`). Answers records per
/// second.
const BASELINE: &str = "
INSERT INTO work_items_twin (tenant_id, integration_id, external_id, key, project_key, summary, issue_type,
                             status, status_category, status_id, source_created_at, source_updated_at,
                             resolved_at, raw_data_id)
  SELECT r.tenant_id, r.integration_id, r.raw_data->>'id', r.raw_data->>'key',
         r.raw_data#>>'{fields,project,key}', r.raw_data#>>'{fields,summary}',
         r.raw_data#>>'{fields,issuetype,name}', r.raw_data#>>'{fields,status,name}',
         r.raw_data#>>'{fields,status,statusCategory,key}', r.raw_data#>>'{fields,status,id}',
         (r.raw_data#>>'{fields,created}')::timestamptz, (r.raw_data#>>'{fields,updated}')::timestamptz,
         (r.raw_data#>>'{fields,resolutiondate}')::timestamptz, r.id
    FROM raw_extraction_data r WHERE r.entity_type = 'jira_issues'
  ON CONFLICT (tenant_id, integration_id, external_id) DO NOTHING;
INSERT INTO pull_requests_twin (tenant_id, integration_id, external_id, repository, number, title, state, draft,
                                author, base_ref, head_ref, head_sha, source_created_at, source_updated_at,
                                closed_at, merged_at, body, html_url, merge_commit_sha, raw_data_id)
  SELECT r.tenant_id, r.integration_id, r.raw_data->>'id', r.raw_data#>>'{base,repo,full_name}',
         (r.raw_data->>'number')::int4, r.raw_data->>'title',
         CASE WHEN r.raw_data->>'merged_at' IS NOT NULL THEN 'merged' ELSE r.raw_data->>'state' END,
         (r.raw_data->>'draft')::bool, r.raw_data#>>'{user,login}', r.raw_data#>>'{base,ref}',
         r.raw_data#>>'{head,ref}', r.raw_data#>>'{head,sha}',
         (r.raw_data->>'created_at')::timestamptz, (r.raw_data->>'updated_at')::timestamptz,
         (r.raw_data->>'closed_at')::timestamptz, (r.raw_data->>'merged_at')::timestamptz,
         r.raw_data->>'body', r.raw_data->>'html_url', r.raw_data->>'merge_commit_sha', r.id
    FROM raw_extraction_data r WHERE r.entity_type = 'github_prs'
  ON CONFLICT (tenant_id, integration_id, external_id) DO NOTHING;
INSERT INTO pull_request_commits_twin (tenant_id, integration_id, repository, pull_number, sha, author_login,
                                       author_name, author_email, authored_at, committed_at, message, raw_data_id)
  SELECT r.tenant_id, r.integration_id, r.extraction_metadata->>'repository',
         (r.extraction_metadata->>'pull_number')::int4, r.raw_data->>'sha', r.raw_data#>>'{author,login}',
         r.raw_data#>>'{commit,author,name}', r.raw_data#>>'{commit,author,email}',
         (r.raw_data#>>'{commit,author,date}')::timestamptz, (r.raw_data#>>'{commit,committer,date}')::timestamptz,
         r.raw_data#>>'{commit,message}', r.id
    FROM raw_extraction_data r WHERE r.entity_type = 'github_pr_commits'
  ON CONFLICT (tenant_id, integration_id, repository, pull_number, sha) DO NOTHING;
INSERT INTO pull_request_reviews_twin (tenant_id, integration_id, external_id, repository, pull_number, reviewer,
                                       state, submitted_at, body, commit_sha, raw_data_id)
  SELECT r.tenant_id, r.integration_id, r.raw_data->>'id', r.extraction_metadata->>'repository',
         (r.extraction_metadata->>'pull_number')::int4, r.raw_data#>>'{user,login}', r.raw_data->>'state',
         (r.raw_data->>'submitted_at')::timestamptz, r.raw_data->>'body', r.raw_data->>'commit_id', r.id
    FROM raw_extraction_data r WHERE r.entity_type = 'github_pr_reviews'
  ON CONFLICT (tenant_id, integration_id, external_id) DO NOTHING;
UPDATE pull_requests_twin p
   SET first_commit_at = (SELECT min(c.authored_at) FROM pull_request_commits_twin c
                           WHERE c.tenant_id = p.tenant_id AND c.integration_id = p.integration_id
                             AND c.repository = p.repository AND c.pull_number = p.number),
       first_review_at = (SELECT min(v.submitted_at) FROM pull_request_reviews_twin v
                           WHERE v.tenant_id = p.tenant_id AND v.integration_id = p.integration_id
                             AND v.repository = p.repository AND v.pull_number = p.number
                             AND v.reviewer IS DISTINCT FROM p.author AND v.reviewer NOT LIKE '%[bot]'),
       approved_at = (SELECT min(v.submitted_at) FROM pull_request_reviews_twin v
                       WHERE v.tenant_id = p.tenant_id AND v.integration_id = p.integration_id
                         AND v.repository = p.repository AND v.pull_number = p.number
                         AND v.reviewer IS DISTINCT FROM p.author AND v.state = 'APPROVED');
INSERT INTO pull_request_work_items_twin (tenant_id, pull_request_id, work_item_key, found_in, work_item_id)
  SELECT DISTINCT ON (p.id, k.key) p.tenant_id, p.id, k.key, k.found_in,
         (SELECT min(w.id) FROM work_items_twin w WHERE w.tenant_id = p.tenant_id AND w.key = k.key)
    FROM pull_requests_twin p,
         LATERAL (SELECT m[1] AS key, place.found_in, place.rank
                    FROM (VALUES ('title', p.title, 1), ('head_ref', p.head_ref, 2), ('body', p.body, 3))
                         AS place(found_in, text, rank),
                         regexp_matches(place.text, '\\m([A-Z][A-Z0-9_]+-[0-9]+)\\M', 'g') AS m) k
   ORDER BY p.id, k.key, k.rank;";

/// The twins of the tables the baseline writes.
const TWINS: [&str; 5] = [
    "work_items",
    "pull_requests",
    "pull_request_commits",
    "pull_request_reviews",
    "pull_request_work_items",
];

fn baseline(db: &DatabaseUrl, records: u32) -> anyhow::Result<f64> {
    for table in TWINS {
        psql(
            db,
            &format!("CREATE TABLE {table}_twin (LIKE {table} INCLUDING ALL)"),
        )?;
    }
    psql(db, "CHECKPOINT")?;
    let started = Instant::now();
    psql(db, BASELINE)?;
    let rate = f64::from(records) / started.elapsed().as_secs_f64();
    let links = psql(
        db,
        "SELECT count(*) FROM pull_request_work_items_twin WHERE work_item_id IS NOT NULL",
    )?;
    for table in TWINS {
        psql(db, &format!("DROP TABLE {table}_twin"))?;
    }
    println!("  baseline: {links} links resolved");
    Ok(rate)
}

fn run(root: &Path, n: u32, batch_size: u32, db: &DatabaseUrl, amqp: &str) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    drop(conn);
    let (tenant, jira, github) = (seed.tenant.id, seed.jira.id, seed.github.id);
    let records = n * (2 + COMMITS + REVIEWS);
    fresh_raw_records(db, tenant, jira, github, n)?;
    println!(
        "{n} pull requests with {COMMITS} commits and {REVIEWS} reviews each, and the {n} Jira issues they name: {records} raw records"
    );
    let twin = baseline(db, records)?;
    let port = super::free_port()?;
    let server = EtlServer::start(
        root,
        "serve",
        &[("DATABASE_URL", db.as_str()), ("RABBITMQ_URL", amqp)],
        Some(port),
    )?;
    let token = super::token(tenant);
    psql(db, "CHECKPOINT")?;
    let ours = pipeline_once(
        db,
        port,
        &token,
        &[
            "jira_issues",
            "github_prs",
            "github_pr_commits",
            "github_pr_reviews",
        ],
        records,
        batch_size,
    )?;
    let peak = server
        .peak_rss_kib()
        .map_or("unavailable".to_owned(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        });
    let check = psql(
        db,
        "SELECT (SELECT count(*) FROM pull_request_work_items WHERE work_item_id IS NOT NULL) || ' links resolved, '
             || (SELECT count(*) FROM pull_requests WHERE first_review_at IS NOT NULL AND review_time_s IS NOT NULL)
             || ' pull requests with a review time'",
    )?;
    println!("  pipeline: {check}");
    println!(
        "\n{:<44} {:>10} {:>10} {:>7}",
        "", "pipeline", "INSERT…SELECT", "ratio"
    );
    println!(
        "{:<44} {:>6.0} r/s {:>9.0} r/s {:>6.0}%   (target ≥ 50%)",
        "raw records to final tables, links, figures",
        ours,
        twin,
        100.0 * ours / twin
    );
    println!("server peak RSS {peak} (target < 100 MiB)");

    // GET /flow-metrics at size: work items resolved and pull requests
    // merged over the last 30 days, with their figures.
    println!(
        "\nfilling {FLOW_ROWS} work items and {FLOW_ROWS} pull requests for GET /flow-metrics…"
    );
    psql(
        db,
        &format!(
            "INSERT INTO work_items (tenant_id, integration_id, external_id, key, project_key, summary,
                                     source_created_at, resolved_at, first_in_progress_at)
             SELECT {tenant}, {jira}, 'flow-' || g, 'FLOW-' || g, 'FLOW', 's',
                    now() - interval '40 days' + (g % 1000) * interval '1 hour',
                    now() - (g % 29) * interval '1 day',
                    now() - interval '35 days' + (g % 977) * interval '1 hour'
               FROM generate_series(1, {FLOW_ROWS}) AS g;
             INSERT INTO pull_requests (tenant_id, integration_id, external_id, repository, number, state,
                                        source_created_at, merged_at, first_commit_at, first_review_at)
             SELECT {tenant}, {github}, 'flow-' || g, 'bench/flow', g, 'merged',
                    now() - interval '35 days' + (g % 500) * interval '1 hour',
                    now() - (g % 29) * interval '1 day',
                    now() - interval '36 days' + (g % 331) * interval '1 hour',
                    now() - interval '34 days' + (g % 613) * interval '1 hour'
               FROM generate_series(1, {FLOW_ROWS}) AS g"
        ),
    )?;
    psql(db, "VACUUM ANALYZE work_items, pull_requests")?;
    let work = std::env::temp_dir().join(format!("etl-bench-prs-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("flow.lua"), super::ingest::wrk_get_script(&token))?;
    let latency = wrk_latency(
        &work.join("flow.lua"),
        &format!("http://127.0.0.1:{port}/api/v1/etl/flow-metrics"),
        FLOW_CONNECTIONS,
        FLOW_SECONDS,
    )?;
    std::fs::write(
        work.join("flow.sql"),
        format!(
            "SELECT count(*), percentile_cont(ARRAY[0.5, 0.85, 0.95]) WITHIN GROUP (ORDER BY lead_time_s),
                    percentile_cont(ARRAY[0.5, 0.85, 0.95]) WITHIN GROUP (ORDER BY cycle_time_s)
               FROM work_items WHERE tenant_id = {tenant} AND resolved_at >= now() - interval '30 days' AND resolved_at < now();
             SELECT count(*), percentile_cont(ARRAY[0.5, 0.85, 0.95]) WITHIN GROUP (ORDER BY coding_time_s),
                    percentile_cont(ARRAY[0.5, 0.85, 0.95]) WITHIN GROUP (ORDER BY pickup_time_s),
                    percentile_cont(ARRAY[0.5, 0.85, 0.95]) WITHIN GROUP (ORDER BY review_time_s)
               FROM pull_requests WHERE tenant_id = {tenant} AND merged_at >= now() - interval '30 days' AND merged_at < now();\n"
        ),
    )?;
    let alone = pgbench_latency(db, &work.join("flow.sql"), FLOW_CONNECTIONS, FLOW_SECONDS)?;
    let _ = std::fs::remove_dir_all(&work);
    drop(server);
    println!(
        "GET /flow-metrics ({FLOW_ROWS} + {FLOW_ROWS} rows, {FLOW_CONNECTIONS} connections): p50 {:.1} ms, p99 {:.1} ms, {:.0} q/s (target p99 < 200 ms); \
         pgbench, its two queries alone: mean {:.1} ms, {:.0} q/s",
        latency.p50_ms, latency.p99_ms, latency.rate, alone.mean_ms, alone.rate
    );
    let floor = status_floor(db, records)?;
    // A pipeline does these writes and at least the INSERT … SELECT's own
    // work, which at best splits over the two cores: its time is at least
    // the floor's plus half the baseline's.
    let bound = 1.0 / (twin / floor + 0.5);
    println!(
        "\nthe status writes alone (pending → processing → completed, nothing mapped or loaded, \
         {FLOOR_BATCH} records a transaction, 2 connections): {floor:.0} r/s, {:.0}% of INSERT…SELECT's rate; \
         with the INSERT…SELECT's own work on top, spread over both cores, a pipeline cannot pass {:.0}%",
        100.0 * floor / twin,
        100.0 * bound
    );
    Ok(())
}

/// Raw records per transaction of the status floor, as in a transform job.
const FLOOR_BATCH: u32 = 1000;

/// The least a pipeline that keeps SPEC §5's statuses does besides mapping
/// and loading: each raw record moved to `processing` when queued and to
/// `completed` when done, by plain updates on two connections (the
/// machine's two cores). Run on the records the pipeline completed, put
/// back to `pending` and vacuumed first. Answers records per second.
fn status_floor(db: &DatabaseUrl, records: u32) -> anyhow::Result<f64> {
    psql(
        db,
        "UPDATE raw_extraction_data SET processing_status = 'pending', processed_at = NULL",
    )?;
    psql(db, "VACUUM ANALYZE raw_extraction_data")?;
    psql(db, "CHECKPOINT")?;
    let (low, high) = {
        let bounds = psql(
            db,
            "SELECT min(id) || ' ' || max(id) FROM raw_extraction_data",
        )?;
        let mut parts = bounds.split(' ').map(str::parse::<i64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(low)), Some(Ok(high))) => (low, high),
            _ => anyhow::bail!("no raw records for the status floor: {bounds}"),
        }
    };
    // Each connection takes every other batch of ids, so both see every
    // entity type alike.
    let pass = |status: &str, half: i64| {
        let (set, from) = match status {
            "processing" => ("processing_status = 'processing'", "pending"),
            _ => (
                "processing_status = 'completed', processed_at = now(), error_details = NULL",
                "processing",
            ),
        };
        format!(
            "DO $$ DECLARE lo int8; BEGIN
               FOR lo IN SELECT g FROM generate_series({low}, {high}, {FLOOR_BATCH}) AS g
                          WHERE ((g - {low}) / {FLOOR_BATCH}) % 2 = {half} LOOP
                 UPDATE raw_extraction_data SET {set}
                  WHERE id >= lo AND id < lo + {FLOOR_BATCH} AND processing_status = '{from}';
                 COMMIT;
               END LOOP;
             END $$"
        )
    };
    let started = Instant::now();
    for status in ["processing", "completed"] {
        std::thread::scope(|scope| {
            let halves: Vec<_> = (0..2)
                .map(|half| {
                    let sql = pass(status, half);
                    scope.spawn(move || psql(db, &sql))
                })
                .collect();
            halves.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a floor pass panicked"))?
                    .map(drop)
            })
        })?;
    }
    let rate = f64::from(records) / started.elapsed().as_secs_f64();
    let completed = psql(
        db,
        "SELECT count(*) FROM raw_extraction_data WHERE processing_status = 'completed'",
    )?;
    if completed != records.to_string() {
        anyhow::bail!("the status floor completed {completed} of {records} raw records");
    }
    Ok(rate)
}
