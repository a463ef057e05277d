//! Work items' derived figures (SPEC §7.1): first_in_progress_at and
//! `changelog_complete` (the histories known, by their changes or, for one
//! without items, by work_item_histories), recomputed set-based from the history tables
//! whenever one of their inputs is loaded, whatever order inputs arrive in
//! (`lead_time_s` and `cycle_time_s` are generated columns of the row).
//! The category each status is known by is kept in
//! work_item_status_categories; a load sends the items that moved into a
//! status to be recomputed only when it changes that status's category, so
//! a job costs what it loaded, not what the integration holds.
//!
//! Order independence under concurrency: two jobs may load inputs of one
//! work item at once, and neither sees the other's rows before it commits.
//! So every recompute of an integration's items runs under a transaction
//! lock on the integration, taken after the job's loads and held to its
//! commit: of two jobs, the later to take it recomputes with the earlier's
//! rows committed. Rows another job has upserted but not committed are
//! skipped (`SKIP LOCKED`), not waited for: that job recomputes them itself
//! once it holds the lock, after this one commits. No recompute waits on a
//! row while holding the lock, so no two jobs wait on each other.

use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Jsonb, Text};
use diesel::QueryableByName;
use etl_domain::TenantId;

use crate::loaders::Touched;

/// First key of the integration locks (`pg_advisory_xact_lock(int4,
/// int4)`, the second key being the integration's id): "ETLH".
const HISTORY_LOCK_SPACE: i32 = 0x4554_4C48;

/// First key of the tenant locks under which links are written and
/// resolved (the second being the tenant's id): "ETLK". Links cross
/// integrations (a GitHub pull request names a Jira work item), so they
/// are serialised per tenant, after the integration locks.
const LINK_LOCK_SPACE: i32 = 0x4554_4C4B;

/// Recomputes the derived figures of the work items `touched` names, and
/// of those moved into a status it names, for `tenant_id`. Call it after
/// the job's loads, in their transaction. Answers how many rows changed.
pub fn recompute(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    touched: &Touched,
) -> QueryResult<usize> {
    if touched.is_empty() {
        return Ok(0);
    }
    let mut integrations: Vec<i32> = touched
        .work_items
        .iter()
        .chain(&touched.statuses)
        .map(|(integration, _)| *integration)
        .chain(touched.pull_requests.iter().map(|(i, _, _)| *i))
        .collect();
    integrations.sort_unstable();
    integrations.dedup();
    // In one order everywhere, so jobs never wait on each other in a ring.
    for integration in integrations {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind::<Int4, _>(HISTORY_LOCK_SPACE)
            .bind::<Int4, _>(integration)
            .execute(conn)?;
    }
    // Every lookup below has its index. Right after a bulk load the
    // planner's statistics may still say the tables are empty, and a
    // sequential scan per row looked up would make a job cost what the
    // whole tenant holds: these statements are planned without them.
    diesel::sql_query("SET LOCAL enable_seqscan = off").execute(conn)?;
    let mut updated = work_items(conn, tenant_id, touched)?;
    updated += pull_requests(conn, tenant_id, touched)?;
    updated += links(conn, tenant_id, touched)?;
    diesel::sql_query("SET LOCAL enable_seqscan = on").execute(conn)?;
    Ok(updated)
}

/// SPEC §7.1's figures of the work items `touched` names, and of those
/// moved into a status whose category it changes.
fn work_items(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    touched: &Touched,
) -> QueryResult<usize> {
    let (status_integrations, statuses): (Vec<i32>, Vec<&str>) = touched
        .statuses
        .iter()
        .map(|(i, s)| (*i, s.as_str()))
        .unzip();
    // First the categories: a status's category is work_item_statuses'
    // for the integration or, failing that, the least category of the
    // work items in that status now. Only the statuses whose category
    // this changes (kept in work_item_status_categories) send the items
    // that moved into them to be recomputed; a load that leaves every
    // category as it was touches no other item.
    #[derive(QueryableByName)]
    struct Changed {
        #[diesel(sql_type = Int4)]
        integration_id: i32,
        #[diesel(sql_type = Text)]
        status_id: String,
    }
    let changed: Vec<Changed> = if statuses.is_empty() {
        Vec::new()
    } else {
        diesel::sql_query(
            "WITH touched AS (
                 SELECT DISTINCT i, status FROM unnest($2::int4[], $3::text[]) AS t(i, status)),
             effective AS (
                 SELECT t.i, t.status, COALESCE(
                          (SELECT s.category FROM work_item_statuses s
                            WHERE s.tenant_id = $1 AND s.integration_id = t.i
                              AND s.external_id = t.status),
                          (SELECT w.status_category FROM work_items w
                            WHERE w.tenant_id = $1 AND w.integration_id = t.i
                              AND w.status_id = t.status AND w.status_category IS NOT NULL
                            ORDER BY w.status_category LIMIT 1)) AS category
                   FROM touched t),
             upserted AS (
                 INSERT INTO work_item_status_categories AS k
                        (tenant_id, integration_id, status_id, category)
                 SELECT $1, i, status, category FROM effective WHERE category IS NOT NULL
                 ON CONFLICT (tenant_id, integration_id, status_id) DO UPDATE
                    SET category = EXCLUDED.category
                  WHERE k.category IS DISTINCT FROM EXCLUDED.category
                 RETURNING integration_id, status_id),
             removed AS (
                 DELETE FROM work_item_status_categories k USING effective e
                  WHERE k.tenant_id = $1 AND k.integration_id = e.i AND k.status_id = e.status
                    AND e.category IS NULL
                 RETURNING k.integration_id, k.status_id)
             SELECT integration_id, status_id::text FROM upserted
             UNION SELECT integration_id, status_id::text FROM removed",
        )
        .bind::<Int4, _>(tenant_id.get())
        .bind::<Array<Int4>, _>(&status_integrations)
        .bind::<Array<Text>, _>(&statuses)
        .load(conn)?
    };
    let (item_integrations, items): (Vec<i32>, Vec<&str>) = touched
        .work_items
        .iter()
        .map(|(i, e)| (*i, e.as_str()))
        .unzip();
    let (status_integrations, statuses): (Vec<i32>, Vec<&str>) = changed
        .iter()
        .map(|c| (c.integration_id, c.status_id.as_str()))
        .unzip();
    if items.is_empty() && statuses.is_empty() {
        return Ok(0);
    }
    let updated = diesel::sql_query(
        "WITH affected AS (
             SELECT i AS integration_id, e AS external_id
               FROM unnest($2::int4[], $3::text[]) AS a(i, e)
             UNION
             SELECT c.integration_id, c.work_item_external_id
               FROM unnest($4::int4[], $5::text[]) AS s(i, status)
               JOIN work_item_changes c
                 ON c.tenant_id = $1 AND c.integration_id = s.i
                AND c.field = 'status' AND c.to_value = s.status),
         -- Each affected item by its key (a lateral lookup: joined, the
         -- planner may read every work item of the tenant instead), its
         -- figures computed once.
         computed AS MATERIALIZED (
             SELECT w.id, w.first_in_progress_at AS was_in_progress_at,
                    w.changelog_complete AS was_complete,
                    (SELECT min(c.changed_at)
                       FROM work_item_changes c
                       JOIN work_item_status_categories k
                         ON k.tenant_id = $1 AND k.integration_id = c.integration_id
                        AND k.status_id = c.to_value AND k.category = 'indeterminate'
                      WHERE c.tenant_id = $1 AND c.integration_id = w.integration_id
                        AND c.work_item_external_id = w.external_id
                        -- Not `c.field = 'status'`: that would let the
                        -- planner read every change into the status
                        -- (idx_work_item_changes_to_status) instead of the
                        -- item's own few (idx_work_item_changes_item).
                        AND c.field || '' = 'status') AS first_in_progress_at,
                    -- The histories known: those with items by their
                    -- changes, those without by work_item_histories.
                    (w.changelog_total IS NULL
                     OR (SELECT count(*) FROM (
                             SELECT c.changelog_id FROM work_item_changes c
                              WHERE c.tenant_id = $1 AND c.integration_id = w.integration_id
                                AND c.work_item_external_id = w.external_id
                             UNION
                             SELECT h.changelog_id FROM work_item_histories h
                              WHERE h.tenant_id = $1 AND h.integration_id = w.integration_id
                                AND h.work_item_external_id = w.external_id) AS known)
                        >= w.changelog_total)
                        AS changelog_complete
               FROM affected a
               CROSS JOIN LATERAL (
                   SELECT * FROM work_items w
                    WHERE w.tenant_id = $1 AND w.integration_id = a.integration_id
                      AND w.external_id = a.external_id
                    LIMIT 1) w),
         changed AS (
             SELECT * FROM computed
              WHERE (was_in_progress_at, was_complete)
                    IS DISTINCT FROM (first_in_progress_at, changelog_complete)),
         -- Only rows whose figures change are locked (a lock writes the
         -- row): those another job holds are left to it.
         target AS (
             SELECT w.id FROM work_items w
              WHERE w.id = ANY (ARRAY(SELECT id FROM changed))
                FOR NO KEY UPDATE SKIP LOCKED)
         UPDATE work_items w
            SET first_in_progress_at = c.first_in_progress_at,
                changelog_complete = c.changelog_complete
           FROM changed c
          WHERE w.id = c.id AND w.id IN (SELECT id FROM target)",
    )
    .bind::<Int4, _>(tenant_id.get())
    .bind::<Array<Int4>, _>(&item_integrations)
    .bind::<Array<Text>, _>(&items)
    .bind::<Array<Int4>, _>(&status_integrations)
    .bind::<Array<Text>, _>(&statuses)
    .execute(conn)?;
    Ok(updated)
}

/// SPEC §7.2's figures of the pull requests `touched` names: the first
/// commit, the first review by someone other than the author and not a
/// bot, the first approval by someone other than the author (the three
/// times are generated from them). As for work items, only rows whose
/// figures change are locked, and rows another job holds are left to it.
fn pull_requests(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    touched: &Touched,
) -> QueryResult<usize> {
    if touched.pull_requests.is_empty() {
        return Ok(0);
    }
    let mut integrations = Vec::with_capacity(touched.pull_requests.len());
    let mut repositories = Vec::with_capacity(touched.pull_requests.len());
    let mut numbers = Vec::with_capacity(touched.pull_requests.len());
    for (integration, repository, number) in &touched.pull_requests {
        integrations.push(*integration);
        repositories.push(repository.as_str());
        numbers.push(*number);
    }
    diesel::sql_query(
        "WITH computed AS MATERIALIZED (
             SELECT p.id, p.first_commit_at AS was_commit_at, p.first_review_at AS was_review_at,
                    p.approved_at AS was_approved_at,
                    (SELECT min(c.authored_at) FROM pull_request_commits c
                      WHERE c.tenant_id = $1 AND c.integration_id = p.integration_id
                        AND c.repository = p.repository AND c.pull_number = p.number)
                        AS first_commit_at,
                    -- `tenant_id + 0`: by idx_pull_request_reviews_pull
                    -- only (see migration 14).
                    (SELECT min(v.submitted_at) FROM pull_request_reviews v
                      WHERE v.pull_number = p.number AND v.repository = p.repository
                        AND v.integration_id = p.integration_id AND v.tenant_id + 0 = $1
                        AND v.reviewer IS DISTINCT FROM p.author
                        AND v.reviewer NOT LIKE '%[bot]')
                        AS first_review_at,
                    (SELECT min(v.submitted_at) FROM pull_request_reviews v
                      WHERE v.pull_number = p.number AND v.repository = p.repository
                        AND v.integration_id = p.integration_id AND v.tenant_id + 0 = $1
                        AND v.reviewer IS DISTINCT FROM p.author AND v.state = 'APPROVED')
                        AS approved_at
               FROM (SELECT DISTINCT i, r, n FROM unnest($2::int4[], $3::text[], $4::int4[]) AS a(i, r, n)) a
               -- A lookup per pull request (OFFSET 0 keeps it one), by
               -- idx_pull_requests_number only (see migration 14).
               CROSS JOIN LATERAL (
                   SELECT * FROM pull_requests p
                    WHERE p.number = a.n AND p.repository = a.r
                      AND p.integration_id = a.i AND p.tenant_id + 0 = $1
                   OFFSET 0) p),
         changed AS (
             SELECT * FROM computed
              WHERE (was_commit_at, was_review_at, was_approved_at)
                    IS DISTINCT FROM (first_commit_at, first_review_at, approved_at)),
         target AS (
             SELECT p.id FROM pull_requests p
              WHERE p.id = ANY (ARRAY(SELECT id FROM changed))
                FOR NO KEY UPDATE SKIP LOCKED)
         UPDATE pull_requests p
            SET first_commit_at = c.first_commit_at, first_review_at = c.first_review_at,
                approved_at = c.approved_at
           FROM changed c
          WHERE p.id = c.id AND p.id IN (SELECT id FROM target)",
    )
    .bind::<Int4, _>(tenant_id.get())
    .bind::<Array<Int4>, _>(&integrations)
    .bind::<Array<Text>, _>(&repositories)
    .bind::<Array<Int4>, _>(&numbers)
    .execute(conn)
}

/// SPEC §7.3's links, under the tenant's link lock: the touched pull
/// requests' links replaced by the keys their rows hold now (a row loaded
/// without keys keeps its links), each resolved to the tenant's work item
/// of that key; and the links waiting for a touched work item's key
/// resolved. Of two jobs, the later to take the lock sees the earlier's
/// rows, so a link and its work item meet whichever arrives first.
fn links(conn: &mut PgConnection, tenant_id: TenantId, touched: &Touched) -> QueryResult<usize> {
    if touched.pull_request_links.is_empty() && touched.work_item_keys.is_empty() {
        return Ok(0);
    }
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<Int4, _>(LINK_LOCK_SPACE)
        .bind::<Int4, _>(tenant_id.get())
        .execute(conn)?;
    let mut written = 0;
    if !touched.pull_request_links.is_empty() {
        let pulls = serde_json::to_string(
            &touched
                .pull_request_links
                .iter()
                .map(|(i, r, n)| (i, r, n))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".to_owned());
        let pulls = crate::JsonText(pulls);
        // The pull requests by key, with the keys they hold.
        const PULLS: &str = "SELECT p.id, p.work_item_keys
               FROM jsonb_array_elements($2::jsonb) AS a(t)
               CROSS JOIN LATERAL (
                   SELECT p.id, p.work_item_keys FROM pull_requests p
                    WHERE p.number = (a.t->>2)::int4 AND p.repository = a.t->>1
                      AND p.integration_id = (a.t->>0)::int4 AND p.tenant_id + 0 = $1
                      AND p.work_item_keys IS NOT NULL
                   OFFSET 0) p";
        written += diesel::sql_query(format!(
            "DELETE FROM pull_request_work_items l
              USING ({PULLS}) p
              WHERE l.pull_request_id = p.id
                AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p.work_item_keys) k
                                 WHERE k->>'key' = l.work_item_key)"
        ))
        .bind::<Int4, _>(tenant_id.get())
        .bind::<Jsonb, _>(&pulls)
        .execute(conn)?;
        written += diesel::sql_query(format!(
            "INSERT INTO pull_request_work_items AS l
                    (tenant_id, pull_request_id, work_item_key, found_in, work_item_id)
             SELECT $1, p.id, k->>'key', k->>'found_in',
                    (SELECT min(w.id) FROM work_items w
                      WHERE w.key = k->>'key' AND w.tenant_id + 0 = $1)
               FROM ({PULLS}) p, jsonb_array_elements(p.work_item_keys) k
             ON CONFLICT (pull_request_id, work_item_key) DO UPDATE
                SET found_in = EXCLUDED.found_in, work_item_id = EXCLUDED.work_item_id
              WHERE (l.found_in, l.work_item_id) IS DISTINCT FROM (EXCLUDED.found_in, EXCLUDED.work_item_id)"
        ))
        .bind::<Int4, _>(tenant_id.get())
        .bind::<Jsonb, _>(&pulls)
        .execute(conn)?;
    }
    if !touched.work_item_keys.is_empty() {
        let keys: Vec<&str> = touched.work_item_keys.iter().map(String::as_str).collect();
        written += diesel::sql_query(
            "WITH resolved AS (
                 SELECT l.id, (SELECT min(w.id) FROM work_items w
                                WHERE w.key = l.work_item_key AND w.tenant_id + 0 = $1)
                            AS work_item_id
                   FROM pull_request_work_items l
                  WHERE l.tenant_id = $1 AND l.work_item_key = ANY ($2::text[]))
             UPDATE pull_request_work_items l
                SET work_item_id = r.work_item_id
               FROM resolved r
              WHERE l.id = r.id AND l.work_item_id IS DISTINCT FROM r.work_item_id",
        )
        .bind::<Int4, _>(tenant_id.get())
        .bind::<Array<Text>, _>(&keys)
        .execute(conn)?;
    }
    Ok(written)
}
