//! `cargo xtask bench pipeline`: Jira issues from raw rows to `work_items`
//! through the whole pipeline (`/pipeline/process`, transform jobs over
//! RabbitMQ that load their own rows), beside PostgreSQL's own `INSERT …
//! SELECT` doing the same mapping with JSON operators on the same rows, in
//! one run; and the server's peak memory. With `--history` each issue
//! carries 12 changelog histories of 1–3 items, and both sides also load
//! them into `work_item_changes` (and its twin).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use etl_store::migrations::{self, DatabaseUrl};

use super::queue::{psql, wait_for, with_bench_environment};
use super::EtlServer;

pub struct PipelineOptions {
    pub issues: u32,
    /// Issues with 12 changelog histories each, loaded into changes too.
    pub history: bool,
    pub batch_size: u32,
    /// Baseline-then-pipeline rounds; the median round is reported.
    pub rounds: u32,
}

/// A realistic Jira issue (REST v2, Cloud), varied by `i`, as SQL building
/// it from `generate_series`; with `history`, fetched with
/// `expand=changelog`: 12 histories of 1–3 items (status, assignee,
/// priority moves), 24 items on average.
fn template(history: bool) -> String {
    let changelog = if history {
        ",
    'changelog', jsonb_build_object('startAt', 0, 'maxResults', 12, 'total', 12, 'histories', (
        SELECT jsonb_agg(jsonb_build_object(
                   'id', (i * 100 + h)::text,
                   'author', jsonb_build_object('accountId', 'acc-' || ((i + h) % 40), 'displayName', 'Dev ' || ((i + h) % 40)),
                   'created', to_char(timestamptz '2024-01-15 10:00:00+00' + h * interval '3 hours', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+0000\"'),
                   'items', (SELECT jsonb_agg(jsonb_build_object(
                                 'field', (ARRAY['status', 'assignee', 'priority'])[1 + (h + k) % 3],
                                 'fieldtype', 'jira',
                                 'from', ((h + k) % 7)::text, 'fromString', 'Value ' || ((h + k) % 7),
                                 'to', ((h + k + 1) % 7)::text, 'toString', 'Value ' || ((h + k + 1) % 7)))
                               FROM generate_series(0, (i + h) % 3) AS k)))
          FROM generate_series(1, 12) AS h))"
    } else {
        ""
    };
    format!(
        "jsonb_build_object(
    'id', (100000 + i)::text, 'key', 'BENCH-' || i,
    'self', 'https://example.atlassian.net/rest/api/2/issue/' || (100000 + i),
    'fields', jsonb_build_object(
        'summary', 'Checkout page times out when the basket holds more than ' || (i % 97) || ' items',
        'description', 'Steps: add items, open checkout. Expected: page loads. Actual: 504 after 30 s. Seen on Chrome and Firefox.',
        'project', jsonb_build_object('id', '10000', 'key', 'BENCH', 'name', 'Bench'),
        'issuetype', jsonb_build_object('id', '10004', 'name', 'Bug', 'subtask', false),
        'status', jsonb_build_object('id', '3', 'name', 'In Progress', 'statusCategory', jsonb_build_object('id', 4, 'key', 'indeterminate')),
        'priority', jsonb_build_object('name', 'High'),
        'assignee', CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_object('accountId', 'acc-' || (i % 40), 'displayName', 'Dev ' || (i % 40)) END,
        'reporter', jsonb_build_object('accountId', 'acc-qa', 'displayName', 'Quinn QA'),
        'labels', jsonb_build_array('checkout', 'perf'),
        'parent', CASE WHEN i % 10 = 0 THEN jsonb_build_object('key', 'BENCH-1') ELSE NULL END,
        'created', '2024-01-15T10:00:00.000+0000',
        'updated', to_char(timestamptz '2024-02-01 00:00:00+00' + i * interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+0000\"'),
        'resolutiondate', NULL,
        'customfield_10016', (i % 8)::float8,
        'customfield_10020', jsonb_build_array(jsonb_build_object('id', 12, 'name', 'Sprint 12')),
        'customfield_10030', NULL,
        'watches', jsonb_build_object('watchCount', 4)){changelog})"
    )
}

/// The same mapping as the transformer, in SQL.
const BASELINE: &str = "INSERT INTO work_items_baseline
    (tenant_id, integration_id, external_id, key, project_key, summary, description, issue_type, status,
     status_category, status_id, priority, assignee, assignee_name, reporter, labels, parent_key,
     source_created_at, source_updated_at, resolved_at, story_points, custom_fields, changelog_total,
     raw_data_id)
  SELECT r.tenant_id, r.integration_id, r.raw_data->>'id', r.raw_data->>'key',
         r.raw_data#>>'{fields,project,key}', r.raw_data#>>'{fields,summary}',
         r.raw_data#>>'{fields,description}', r.raw_data#>>'{fields,issuetype,name}',
         r.raw_data#>>'{fields,status,name}', r.raw_data#>>'{fields,status,statusCategory,key}',
         r.raw_data#>>'{fields,status,id}', r.raw_data#>>'{fields,priority,name}',
         coalesce(r.raw_data#>>'{fields,assignee,accountId}', r.raw_data#>>'{fields,assignee,name}'),
         r.raw_data#>>'{fields,assignee,displayName}',
         coalesce(r.raw_data#>>'{fields,reporter,accountId}', r.raw_data#>>'{fields,reporter,name}'),
         ARRAY(SELECT jsonb_array_elements_text(coalesce(r.raw_data#>'{fields,labels}', '[]'))),
         r.raw_data#>>'{fields,parent,key}',
         (r.raw_data#>>'{fields,created}')::timestamptz, (r.raw_data#>>'{fields,updated}')::timestamptz,
         (r.raw_data#>>'{fields,resolutiondate}')::timestamptz,
         (r.raw_data#>>'{fields,customfield_10016}')::float8,
         coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(r.raw_data->'fields') AS f(k, v)
                    WHERE k LIKE 'customfield\\_%' AND v <> 'null'::jsonb), '{}'),
         (r.raw_data#>>'{changelog,total}')::int4,
         r.id
    FROM raw_extraction_data r
   WHERE r.entity_type = 'jira_issues'
  ON CONFLICT (tenant_id, integration_id, external_id) DO UPDATE
     SET summary = EXCLUDED.summary, source_updated_at = EXCLUDED.source_updated_at
   WHERE EXCLUDED.source_updated_at >= work_items_baseline.source_updated_at";

/// The same mapping of every history item, in SQL (`--history`).
const CHANGES_BASELINE: &str = "INSERT INTO work_item_changes_baseline
    (tenant_id, integration_id, work_item_external_id, changelog_id, item_index, field, field_type,
     from_value, from_string, to_value, to_string, author, author_name, changed_at, raw_data_id)
  SELECT r.tenant_id, r.integration_id, r.raw_data->>'id', h.value->>'id', (it.ord - 1)::int4,
         it.value->>'field', it.value->>'fieldtype', it.value->>'from', it.value->>'fromString',
         it.value->>'to', it.value->>'toString',
         coalesce(h.value#>>'{author,accountId}', h.value#>>'{author,name}'),
         h.value#>>'{author,displayName}', (h.value->>'created')::timestamptz, r.id
    FROM raw_extraction_data r,
         jsonb_array_elements(r.raw_data#>'{changelog,histories}') AS h(value),
         jsonb_array_elements(h.value->'items') WITH ORDINALITY AS it(value, ord)
   WHERE r.entity_type = 'jira_issues'
  ON CONFLICT (tenant_id, integration_id, changelog_id, item_index) DO NOTHING";

pub fn pipeline(root: &Path, options: &PipelineOptions) -> anyhow::Result<()> {
    with_bench_environment(root, &["etl-server"], |db, amqp, _| {
        run(root, options, db, amqp)
    })
}

/// Issues per second of the baseline `INSERT … SELECT` into a fresh copy
/// of work_items (and with `history` of work_item_changes, the two
/// statements one after the other): `LIKE … INCLUDING ALL` (columns,
/// defaults, generated columns, indexes), and with `foreign_keys` also
/// the tables' foreign keys, which LIKE leaves out.
fn baseline(db: &DatabaseUrl, n: u32, foreign_keys: bool, history: bool) -> anyhow::Result<f64> {
    let mut tables = vec![("work_items", BASELINE)];
    if history {
        tables.push(("work_item_changes", CHANGES_BASELINE));
    }
    for (table, _) in &tables {
        psql(
            db,
            &format!("CREATE TABLE {table}_baseline (LIKE {table} INCLUDING ALL)"),
        )?;
        if foreign_keys {
            psql(
                db,
                &format!(
                    "DO $$
                     DECLARE fk record;
                     BEGIN
                         FOR fk IN SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
                                    WHERE conrelid = '{table}'::regclass AND contype = 'f' LOOP
                             EXECUTE 'ALTER TABLE {table}_baseline ADD ' || fk.def;
                         END LOOP;
                     END
                     $$"
                ),
            )?;
        }
    }
    psql(db, "CHECKPOINT")?;
    let started = Instant::now();
    for (_, mapping) in &tables {
        psql(db, mapping)?;
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    for (table, _) in &tables {
        psql(db, &format!("DROP TABLE {table}_baseline"))?;
    }
    Ok(rate)
}

/// Writes the `n` raw issues afresh (every round starts from the same,
/// freshly written and vacuumed table: no churn of earlier rounds for
/// either side to read through).
fn fresh_raw_records(
    db: &DatabaseUrl,
    tenant: i32,
    jira: i32,
    n: u32,
    history: bool,
) -> anyhow::Result<()> {
    psql(
        db,
        "TRUNCATE pull_request_work_items, work_items, work_item_changes, work_item_histories, etl_job_queue, raw_extraction_data",
    )?;
    let template = template(history);
    psql(db, &format!(
        "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data)
         SELECT {tenant}, {jira}, 'jira_issues', (100000 + i)::text, {template} FROM generate_series(1, {n}) AS i"
    ))?;
    psql(db, "VACUUM ANALYZE")?;
    Ok(())
}

/// One pipeline pass over the `n` pending records: `/pipeline/process`
/// for each of `entity_types` (all asked at once), until none is left
/// pending or processing. Answers records per second.
pub(crate) fn pipeline_once(
    db: &DatabaseUrl,
    port: u16,
    token: &str,
    entity_types: &[&str],
    n: u32,
    batch_size: u32,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for entity_type in entity_types {
        let output = std::process::Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-H",
            ])
            .arg(format!("Authorization: Bearer {token}"))
            .arg("-d")
            .arg(format!(
                "{{\"entity_type\": \"{entity_type}\", \"batch_size\": {batch_size}}}"
            ))
            .arg(format!(
                "http://127.0.0.1:{port}/api/v1/etl/pipeline/process"
            ))
            .output()?;
        if !output.status.success() {
            bail!("POST /pipeline/process ({entity_type}) failed");
        }
    }
    // Finished when no record is left pending or processing: one index probe
    // per look, cheap beside counting the completed ones.
    wait_for(
        db,
        "SELECT NOT EXISTS (SELECT 1 FROM raw_extraction_data
                             WHERE processing_status IN ('pending', 'processing')) AS done",
        Duration::from_secs(1800),
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    let completed = psql(
        db,
        "SELECT count(*) FROM raw_extraction_data WHERE processing_status = 'completed'",
    )?;
    if completed != n.to_string() {
        bail!("only {completed} of {n} raw records completed");
    }
    Ok(f64::from(n) / elapsed)
}

fn run(root: &Path, options: &PipelineOptions, db: &DatabaseUrl, amqp: &str) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    drop(conn);
    let (tenant, jira) = (seed.tenant.id, seed.jira.id);
    let n = options.issues;
    let history = options.history;
    fresh_raw_records(db, tenant, jira, n, history)?;
    let bytes = psql(
        db,
        "SELECT avg(pg_column_size(raw_data))::int FROM raw_extraction_data",
    )?;
    if history {
        let items = psql(
            db,
            "SELECT sum(jsonb_array_length(h->'items')) FROM raw_extraction_data,
                    jsonb_array_elements(raw_data#>'{changelog,histories}') AS h",
        )?;
        println!(
            "{n} raw Jira issues of about {bytes} bytes (jsonb) each, with 12 histories each, {items} history items in all"
        );
    } else {
        println!("{n} raw Jira issues of about {bytes} bytes (jsonb) each");
    }

    // PostgreSQL's own mapping of the same rows into a plain copy of
    // work_items, for reference.
    let plain = baseline(db, n, false, history)?;

    let port = super::free_port()?;
    let server = EtlServer::start(
        root,
        "serve",
        &[("DATABASE_URL", db.as_str()), ("RABBITMQ_URL", amqp)],
        Some(port),
    )?;
    let token = super::token(tenant);
    // Rounds, each over freshly written rows: the baseline into the twin
    // (same foreign keys), then the pipeline, back to back. On a shared
    // 2-core machine either side alone varies by a third between runs, so
    // each round's ratio is reported and the median is the figure.
    let mut rounds = Vec::new();
    for round in 1..=options.rounds.max(1) {
        if round > 1 {
            fresh_raw_records(db, tenant, jira, n, history)?;
        }
        let twin = baseline(db, n, true, history)?;
        psql(db, "CHECKPOINT")?;
        let ours = pipeline_once(db, port, &token, &["jira_issues"], n, options.batch_size)?;
        println!(
            "round {round}: pipeline {ours:.0} r/s, INSERT…SELECT into the twin {twin:.0} r/s: {:.0}%",
            100.0 * ours / twin
        );
        rounds.push((ours, twin));
    }
    let rows = psql(db, "SELECT count(*) FROM work_items")?;
    let changes = psql(db, "SELECT count(*) FROM work_item_changes")?;
    let peak = server
        .peak_rss_kib()
        .map_or("unavailable".to_owned(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        });
    drop(server);

    let mut by_ratio = rounds.clone();
    by_ratio.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    let (ours, twin) = by_ratio[by_ratio.len() / 2];
    println!(
        "\n{:<44} {:>12} {:>12} {:>7}",
        "median round", "pipeline", "INSERT…SELECT", "ratio"
    );
    // The target is set against the same work: a table with work_items'
    // checks. The plain copy shows what the foreign keys cost both sides.
    let (twins, goal) = if history {
        ("work_items' and work_item_changes' twins", "(target ≥ 60%)")
    } else {
        (
            "work_items' twin (same foreign keys)",
            "(floor: the seed's figure)",
        )
    };
    for (target, rate, note) in [
        (twins, twin, goal),
        (
            "plain copy (LIKE, no foreign keys)",
            plain,
            "(for reference, first round's)",
        ),
    ] {
        println!(
            "{:<44} {:>8.0} r/s {:>8.0} r/s {:>6.0}%   {note}",
            format!("into {target}"),
            ours,
            rate,
            100.0 * ours / rate
        );
    }
    println!(
        "{n} issues, {} per job, {} rounds; work_items rows: {rows}, work_item_changes rows: {changes}; server peak RSS {peak}",
        options.batch_size,
        rounds.len()
    );
    Ok(())
}
