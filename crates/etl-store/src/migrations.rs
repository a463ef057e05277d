//! Embedded migrations (the `migrations/` folder at the workspace root, in
//! Diesel's format) and the database-level operations around them. `etl-server
//! migrate` and `cargo xtask migrate` both call these.

use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::StoreError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Key of the advisory lock held while migrating, so that several processes
/// starting at once do not apply the same migration twice.
const MIGRATION_LOCK_KEY: i64 = 0x6574_6c5f_6d69_6772; // "etl_migr"

/// One migration and whether it has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub version: String,
    /// The migration's folder name (`<version>_<description>`).
    pub name: String,
    pub applied: bool,
}

/// How long a migration waits for a table lock before it gives up and
/// tries again (SPEC §8): a migration waiting for a lock queues every later
/// statement on that table behind it, so ingest stalls at most this long.
pub const MIGRATION_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest pause between two tries of a migration that could not get its
/// locks.
const MIGRATION_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies every pending migration, holding an advisory lock. Returns the
/// versions applied (empty when the schema was up to date).
///
/// Migrations run without the session's statement timeout (they may take
/// long on a big database), and wait for each table lock at most
/// [`MIGRATION_LOCK_TIMEOUT`]; a migration that could not get its locks is
/// rolled back and tried again after a pause (doubling, at most 10 s),
/// for as long as it takes.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    run_pending_with(conn, MIGRATION_LOCK_TIMEOUT)
}

/// [`run_pending`] with another lock timeout.
pub fn run_pending_with(
    conn: &mut PgConnection,
    lock_timeout: std::time::Duration,
) -> Result<Vec<String>, StoreError> {
    let before = session_limits(conn)?;
    conn.batch_execute(&format!(
        "SET statement_timeout = 0; SET lock_timeout = {}",
        lock_timeout.as_millis().max(1)
    ))?;
    let mut pause = std::time::Duration::from_millis(100);
    let mut retry = |error: &dyn std::fmt::Display| {
        tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "migrations could not get a lock in time; trying again");
        std::thread::sleep(pause);
        pause = (pause * 2).min(MIGRATION_RETRY_MAX);
    };
    let result = loop {
        // Another process migrating holds the advisory lock: wait for it in
        // bounded steps too.
        match with_migration_lock(conn, |conn| run_each(conn, &mut retry)) {
            Err(StoreError::Query(error)) if is_lock_timeout(&error) => retry(&error),
            done => break done,
        }
    };
    conn.batch_execute(&before)?;
    result
}

/// Runs the pending migrations one by one, calling `retry` (which pauses)
/// before trying again one that could not get its locks.
fn run_each(
    conn: &mut PgConnection,
    retry: &mut impl FnMut(&dyn std::fmt::Display),
) -> Result<Vec<String>, StoreError> {
    let mut applied = Vec::new();
    loop {
        match conn.run_next_migration_if_pending() {
            Ok(Some(version)) => applied.push(version),
            Ok(None) => return Ok(applied),
            Err(error) if is_lock_timeout(&*error) => retry(&error),
            Err(error) => return Err(StoreError::Migration(error)),
        }
    }
}

/// Statements that put the session's statement and lock timeouts back.
fn session_limits(conn: &mut PgConnection) -> Result<String, StoreError> {
    #[derive(QueryableByName)]
    struct Limits {
        #[diesel(sql_type = Text)]
        statement_timeout: String,
        #[diesel(sql_type = Text)]
        lock_timeout: String,
    }
    let limits: Limits = diesel::sql_query(
        "SELECT current_setting('statement_timeout') AS statement_timeout,
                current_setting('lock_timeout') AS lock_timeout",
    )
    .get_result(conn)?;
    Ok(format!(
        "SET statement_timeout = '{}'; SET lock_timeout = '{}'",
        limits.statement_timeout.replace('\'', ""),
        limits.lock_timeout.replace('\'', "")
    ))
}

/// Whether a migration failed because a lock wait passed `lock_timeout`
/// (SQLSTATE 55P03, which Diesel reports by its message only).
fn is_lock_timeout(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if text.contains("lock timeout") || text.contains("could not obtain lock") {
            return true;
        }
        next = error.source();
    }
    false
}

/// One pending migration at a time, so that a lock timeout costs only the
/// migration that hit it.
trait RunNext {
    fn run_next_migration_if_pending(
        &mut self,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>;
}

impl RunNext for PgConnection {
    fn run_next_migration_if_pending(
        &mut self,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        let pending = self.pending_migrations(MIGRATIONS)?;
        match pending.first() {
            None => Ok(None),
            Some(migration) => Ok(Some(self.run_migration(migration)?.to_string())),
        }
    }
}

/// Reverts the newest applied migration; `None` when none is applied.
pub fn revert_last(conn: &mut PgConnection) -> Result<Option<String>, StoreError> {
    with_migration_lock(conn, |conn| {
        if conn
            .applied_migrations()
            .map_err(StoreError::Migration)?
            .is_empty()
        {
            return Ok(None);
        }
        let version = conn
            .revert_last_migration(MIGRATIONS)
            .map_err(StoreError::Migration)?;
        Ok(Some(version.to_string()))
    })
}

/// Reverts every applied migration, newest first.
pub fn revert_all(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    with_migration_lock(conn, |conn| {
        let reverted = conn
            .revert_all_migrations(MIGRATIONS)
            .map_err(StoreError::Migration)?;
        Ok(reverted.iter().map(ToString::to_string).collect())
    })
}

/// Every embedded migration, oldest first, with whether it is applied.
pub fn status(conn: &mut PgConnection) -> Result<Vec<MigrationState>, StoreError> {
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(StoreError::Migration)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut states: Vec<MigrationState> = embedded_migrations()?
        .into_iter()
        .map(|(version, name)| MigrationState {
            applied: applied.contains(&version),
            version,
            name,
        })
        .collect();
    states.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(states)
}

/// Whether any embedded migration is not yet applied.
pub fn has_pending(conn: &mut PgConnection) -> Result<bool, StoreError> {
    conn.has_pending_migration(MIGRATIONS)
        .map_err(StoreError::Migration)
}

/// Drops every table, sequence, view, type and function of the `public`
/// schema (ours and Diesel's bookkeeping), leaving an empty database.
pub fn drop_all_tables(conn: &mut PgConnection) -> Result<(), StoreError> {
    conn.batch_execute(
        "DO $$ DECLARE r record; BEGIN
           FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
             EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', r.tablename);
           END LOOP;
           -- The migrations' trigger functions; not those of extensions.
           FOR r IN SELECT p.oid::regprocedure AS f
                      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'public'
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                        WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
             EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.f);
           END LOOP;
         END $$;",
    )?;
    Ok(())
}

/// (version, name) of every embedded migration.
fn embedded_migrations() -> Result<Vec<(String, String)>, StoreError> {
    let migrations: Vec<Box<dyn Migration<Pg>>> =
        MigrationSource::<Pg>::migrations(&MIGRATIONS).map_err(StoreError::Migration)?;
    Ok(migrations
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect())
}

fn with_migration_lock<T>(
    conn: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)?;
    let result = work(conn);
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)?;
    result
}

/// Where a database lives, split from its connection URL.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    url: url::Url,
}

impl DatabaseUrl {
    /// Parses a `postgres://` or `postgresql://` URL that names a database.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "scheme must be postgres:// or postgresql:// (got {}://)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("names no host".to_owned());
        }
        let parsed = Self { url };
        if parsed.database_name().is_empty() {
            return Err("names no database (add /<name> after the host)".to_owned());
        }
        Ok(parsed)
    }

    pub fn database_name(&self) -> String {
        let name = self.url.path().trim_start_matches('/');
        percent_decode(name)
    }

    /// The same server's `postgres` maintenance database.
    pub fn maintenance_url(&self) -> String {
        self.with_database("postgres")
    }

    /// The same server, another database.
    pub fn with_database(&self, name: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Creates the database named by `url` when it does not exist yet. Returns
/// whether it was created.
pub fn create_database_if_missing(url: &DatabaseUrl) -> Result<bool, StoreError> {
    let mut admin = PgConnection::establish(&url.maintenance_url())?;
    let name = url.database_name();
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        exists: bool,
    }
    let exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&name)
            .get_result::<Exists>(&mut admin)?
            .exists;
    if exists {
        return Ok(false);
    }
    match admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))) {
        Ok(()) => Ok(true),
        // Someone else created it between our check and our CREATE.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Drops the database named by `url` (closing its connections) if it exists.
pub fn drop_database(url: &DatabaseUrl) -> Result<(), StoreError> {
    let mut admin = PgConnection::establish(&url.maintenance_url())?;
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&url.database_name())
    ))?;
    Ok(())
}

/// Quotes an SQL identifier (`"name"`, doubling inner quotes).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_names_its_database_and_maintenance_database() {
        let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/etl?sslmode=disable")
            .expect("valid");
        assert_eq!(url.database_name(), "etl");
        assert_eq!(
            url.maintenance_url(),
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
        );
    }

    #[test]
    fn database_url_rejects_other_schemes_and_missing_parts() {
        assert!(DatabaseUrl::parse("mysql://root@localhost/etl").is_err());
        assert!(DatabaseUrl::parse("postgres://127.0.0.1:5432").is_err());
        assert!(DatabaseUrl::parse("postgres://127.0.0.1:5432/").is_err());
        assert!(DatabaseUrl::parse("not a url").is_err());
        assert!(DatabaseUrl::parse("postgresql://u:p@db.example/etl_prod").is_ok());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("etl"), "\"etl\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
