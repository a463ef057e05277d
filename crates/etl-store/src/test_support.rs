//! Per-test databases for this and other crates' tests.
//!
//! The first test to need a database builds a migrated template
//! (`etl_test_tmpl_<hash of migrations/>`) under an advisory lock; every test
//! then gets its own `CREATE DATABASE … TEMPLATE …` clone, which takes
//! milliseconds, and drops it when the [`TestDatabase`] goes out of scope.
//! Tests therefore never share state and run in parallel.
//!
//! The server is `ETL_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`); only databases named
//! `etl_test_…` are ever created or dropped.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rand::Rng;

use crate::migrations::{quote_ident, run_pending, DatabaseUrl};
use crate::pool::{build_pool, PgPool, PoolConfig};

/// Diesel, for tests that check tables directly.
pub mod diesel_prelude {
    pub use diesel;
    pub use diesel::prelude::*;
}

/// Without TLS: the server is local, and libpq's OpenSSL is not
/// safe against a process exiting while a pool thread connects (diesel
/// #3441), which test processes do all the time.
const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// A database of one's own, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    server: DatabaseUrl,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A fresh, migrated database.
    pub fn migrated() -> Self {
        let server = server_url();
        let template = ensure_template(&server);
        Self::create(server, Some(&template))
    }

    /// A fresh, empty database (no tables at all).
    pub fn empty() -> Self {
        Self::create(server_url(), None)
    }

    /// A name and URL for a database that does not exist yet (for code under
    /// test that creates it); dropped on drop all the same if it was made.
    pub fn reserved() -> Self {
        let server = server_url();
        let name = unique_name();
        let url = server.with_database(&name);
        Self { server, name, url }
    }

    fn create(server: DatabaseUrl, template: Option<&str>) -> Self {
        let name = unique_name();
        let mut admin = admin_connection(&server);
        let sql = match template {
            Some(template) => format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(template)
            ),
            None => format!("CREATE DATABASE {}", quote_ident(&name)),
        };
        admin
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let url = server.with_database(&name);
        Self { server, name, url }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }

    pub fn pool(&self) -> PgPool {
        build_pool(&PoolConfig::new(self.url.clone()))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Ok(mut admin) = PgConnection::establish(&self.server.maintenance_url()) else {
            return;
        };
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        ));
    }
}

fn unique_name() -> String {
    format!("etl_test_{:016x}", rand::thread_rng().gen::<u64>())
}

fn server_url() -> DatabaseUrl {
    let text =
        std::env::var("ETL_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
    DatabaseUrl::parse(&text).unwrap_or_else(|e| panic!("ETL_TEST_DATABASE_URL {e}"))
}

fn admin_connection(server: &DatabaseUrl) -> PgConnection {
    PgConnection::establish(&server.maintenance_url())
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server: {e}"))
}

/// The migrated template for the current `migrations/`, built once.
fn ensure_template(server: &DatabaseUrl) -> String {
    let hash = migrations_hash();
    let template = format!("etl_test_tmpl_{hash:016x}");
    let mut admin = admin_connection(server);
    // The advisory lock makes concurrent test processes build it only once.
    let lock_key = i64::from_ne_bytes(hash.to_ne_bytes());
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(lock_key)
        .execute(&mut admin)
        .unwrap_or_else(|e| panic!("locking the template: {e}"));
    if !database_exists(&mut admin, &template) {
        // Build under another name and rename when done, so that a run killed
        // half-way never leaves a half-migrated template behind.
        let building = format!("{template}_building");
        // Two statements: DROP/CREATE DATABASE refuse to share a transaction.
        for sql in [
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            "CREATE DATABASE {}",
        ] {
            admin
                .batch_execute(&sql.replace("{}", &quote_ident(&building)))
                .unwrap_or_else(|e| panic!("creating the template: {e}"));
        }
        {
            let mut conn = PgConnection::establish(&server.with_database(&building))
                .unwrap_or_else(|e| panic!("connecting to the template: {e}"));
            run_pending(&mut conn).unwrap_or_else(|e| panic!("migrating the template: {e}"));
        }
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&building),
                quote_ident(&template)
            ))
            .unwrap_or_else(|e| panic!("renaming the template: {e}"));
        drop_stale_templates(&mut admin, &template);
    }
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(lock_key)
        .execute(&mut admin);
    template
}

/// Templates of older migrations are of no further use. One that another
/// run still clones from refuses the drop; it is left for a later run.
fn drop_stale_templates(admin: &mut PgConnection, current: &str) {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let stale: Vec<Name> = diesel::sql_query(
        "SELECT datname::text FROM pg_database
          WHERE datname LIKE 'etl\\_test\\_tmpl\\_%' AND datname NOT LIKE '%\\_building'
            AND datname <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .load(admin)
    .unwrap_or_default();
    for name in stale {
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}",
            quote_ident(&name.datname)
        ));
    }
}

fn database_exists(admin: &mut PgConnection, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Count>(admin)
        .map(|c| c.n > 0)
        .unwrap_or(false)
}

/// A hash of every file under `migrations/`, so that editing a migration
/// builds a new template instead of reusing a stale one. The files are the
/// migrations this binary embeds: `build.rs` rebuilds the crate when the
/// folder changes.
fn migrations_hash() -> u64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files = Vec::new();
    collect_files(&root, &mut files);
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.strip_prefix(&root).unwrap_or(&file).hash(&mut hasher);
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The tenant door for tests: the proof that `tenant_id` is active, or a
/// panic naming why it is not.
pub fn active_tenant(conn: &mut PgConnection, tenant_id: i32) -> crate::tenants::ActiveTenant {
    crate::tenants::activate(conn, etl_domain::TenantId::new(tenant_id))
        .expect("read the tenant")
        .unwrap_or_else(|refusal| panic!("{refusal}"))
}

/// Calls `check` until it answers `Some`, for at most `timeout`; `None` if
/// it never did. For sync tests waiting on something the server does a
/// moment later (a closed session leaving `pg_stat_activity`, say).
pub fn poll_blocking<T>(
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
