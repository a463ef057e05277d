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
use diesel::sql_types::{Array, Int4, Text};
use diesel::QueryableByName;
use etl_domain::TenantId;

use crate::loaders::Touched;

/// First key of the integration locks (`pg_advisory_xact_lock(int4,
/// int4)`, the second key being the integration's id): "ETLH".
const HISTORY_LOCK_SPACE: i32 = 0x4554_4C48;

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
    // Every lookup below has its index. Right after a bulk load the
    // planner's statistics may still say the history tables are empty,
    // and a sequential scan per work item would make a job cost what the
    // whole integration holds: this one statement is planned without them.
    diesel::sql_query("SET LOCAL enable_seqscan = off").execute(conn)?;
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
                FOR UPDATE SKIP LOCKED)
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
    diesel::sql_query("SET LOCAL enable_seqscan = on").execute(conn)?;
    Ok(updated)
}
