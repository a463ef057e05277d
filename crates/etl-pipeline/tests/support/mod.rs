//! What the pipeline's tests share: a tenant with its integrations, raw
//! records stored as the API stores them, a transform job run as a worker
//! runs it, and reads of the final tables.

#![allow(dead_code)] // Each test binary uses its own part of this.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use etl_domain::{EntityType, JobPriority, JobType};
use etl_handlers::JobHandler;
use etl_pipeline::TransformHandler;
use etl_store::integrations::{self, NewIntegration};
use etl_store::jobs::{self, NewJob};
use etl_store::raw_records::{self, NewRawRecord};
use etl_store::tenants::{self, NewTenant};
use etl_store::{Connection as _, JsonText, PgConnection};
use serde_json::{json, Value};

/// A tenant with one integration (`integration`) of the provider asked.
pub struct Site {
    pub tenant: i32,
    pub integration: i32,
}

/// A new tenant named `name` with a Jira integration.
pub fn site(conn: &mut PgConnection, name: &str) -> Site {
    let tenant = tenants::insert(conn, &NewTenant { name, active: true })
        .expect("tenant")
        .id;
    Site {
        tenant,
        integration: integration(conn, tenant, "jira", json!({})),
    }
}

/// A new integration of `tenant`.
pub fn integration(conn: &mut PgConnection, tenant: i32, provider: &str, settings: Value) -> i32 {
    integrations::insert(
        conn,
        &NewIntegration {
            tenant_id: tenant,
            provider,
            name: provider,
            active: true,
            settings,
        },
    )
    .expect("integration")
    .id
}

/// One raw record to store: its entity type, `raw_data` and metadata.
#[derive(Debug, Clone)]
pub struct Record {
    pub entity_type: &'static str,
    pub raw_data: Value,
    pub metadata: Option<Value>,
}

/// Stores `records` through the site's integration.
pub fn store(conn: &mut PgConnection, site: &Site, records: &[Record]) -> Vec<i32> {
    let new: Vec<NewRawRecord> = records
        .iter()
        .map(|r| NewRawRecord {
            tenant_id: site.tenant,
            integration_id: site.integration,
            entity_type: r.entity_type.to_owned(),
            external_id: None,
            raw_data: JsonText::of(&r.raw_data),
            extraction_metadata: r.metadata.as_ref().map(JsonText::of),
            ingest_changes: JsonText("[]".to_owned()),
        })
        .collect();
    raw_records::insert_checked_many(conn, &new)
        .expect("stored")
        .into_iter()
        .map(|id| id.expect("checked"))
        .collect()
}

/// Runs one transform job over `ids` (all of `entity_type`) as a worker
/// does: the handler inside the transaction that completes the job.
pub fn transform(conn: &mut PgConnection, site: &Site, entity_type: &str, ids: &[i32]) -> Value {
    let job = jobs::insert(
        conn,
        &NewJob::new(
            site.tenant,
            JobType::Transform,
            &EntityType::parse(entity_type).expect("entity type"),
            json!({ "raw_data_ids": ids }),
            JobPriority::default(),
        ),
    )
    .expect("job");
    conn.transaction(|conn| {
        TransformHandler
            .run(conn, &job)
            .map_err(|failure| panic!("the job failed: {failure:?}"))
    })
    .unwrap_or_else(|e: etl_store::QueryError| panic!("{e}"))
}

#[derive(QueryableByName)]
struct Json {
    #[diesel(sql_type = Text)]
    data: String,
}

/// The one row of `sql`, whose column `data` is JSON text.
pub fn query_json(conn: &mut PgConnection, sql: &str) -> Value {
    let row: Json = diesel::sql_query(sql).get_result(conn).expect(sql);
    serde_json::from_str(&row.data).expect("json")
}

/// The one row of `sql`, whose column `n` is a count.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .expect(sql)
        .n
}

/// Stores and transforms `records` in this order, `groups` records per job
/// (cycling; a job covers records of one entity type, so a group is split
/// at each change of type), each through the site `site_of` its entity
/// type.
pub fn load_in<'a>(
    conn: &mut PgConnection,
    records: &[Record],
    groups: &[usize],
    site_of: impl Fn(&str) -> &'a Site,
) {
    let mut rest = records;
    let mut sizes = groups.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let entity_type = rest[0].entity_type;
        let same = rest[..size]
            .iter()
            .take_while(|r| r.entity_type == entity_type)
            .count();
        let site = site_of(entity_type);
        let ids = store(conn, site, &rest[..same]);
        transform(conn, site, entity_type, &ids);
        rest = &rest[same..];
    }
}

/// `records` in the order the generated keys `order` give them, with the
/// records at `repeats` (modulo their count) stored once more.
pub fn shuffled(records: &[Record], order: &[u64], repeats: &[usize]) -> Vec<Record> {
    let mut keyed: Vec<(u64, Record)> = records
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (order[i % order.len()].wrapping_add(i as u64), r))
        .collect();
    for &again in repeats {
        let record = records[again % records.len()].clone();
        keyed.push((order[again % order.len()] ^ 0x5555, record));
    }
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, r)| r).collect()
}
