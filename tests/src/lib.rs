//! Test harness: a real server on an ephemeral port over its own database,
//! a token factory, and a TCP proxy that can cut a dependency off.

mod proxy;
pub mod rabbit;
pub mod tls;

use std::net::TcpListener;

use etl_http::auth::{JwtKeys, JwtSecret};
use etl_http::{AppState, HttpConfig};
use etl_store::test_support::TestDatabase;

pub use proxy::TcpProxy;

pub const TEST_SECRET: &str = "test-secret-not-for-production";

/// A running server and what it stands on. Dropping it stops the server and
/// drops the database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub keys: JwtKeys,
    server: actix_web::dev::ServerHandle,
    // Dropped last: the server must stop before its database goes.
    pub db: TestDatabase,
}

/// How to build a [`TestApp`].
#[derive(Default)]
pub struct TestAppBuilder {
    database_url: Option<String>,
    http: Option<HttpConfig>,
    database: Option<TestDatabase>,
    configure: Option<Box<dyn FnOnce(AppState) -> AppState>>,
    lock_timeout: Option<std::time::Duration>,
}

impl TestAppBuilder {
    /// Point the server at this URL (e.g. through a [`TcpProxy`]) instead of
    /// the test database's own.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    pub fn http(mut self, config: HttpConfig) -> Self {
        self.http = Some(config);
        self
    }

    /// Serve over this (already made) database instead of a new one.
    pub fn database(mut self, db: TestDatabase) -> Self {
        self.database = Some(db);
        self
    }

    /// The sessions' `lock_timeout` (default: `ETL_DB_LOCK_TIMEOUT_MS`'s
    /// default, 5 s).
    pub fn lock_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Adjusts the server's state (shared notifier, readiness checks).
    pub fn state(mut self, configure: impl FnOnce(AppState) -> AppState + 'static) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    pub async fn spawn(self) -> TestApp {
        let db = self.database.unwrap_or_else(TestDatabase::migrated);
        let url = self.database_url.unwrap_or_else(|| db.url().to_owned());
        let mut pool_config = etl_store::PoolConfig::new(url);
        pool_config.checkout_timeout = std::time::Duration::from_secs(2);
        pool_config.max_size = 4;
        // The production defaults of ETL_DB_STATEMENT_TIMEOUT_MS and
        // ETL_DB_LOCK_TIMEOUT_MS.
        pool_config.statement_timeout = Some(std::time::Duration::from_secs(30));
        pool_config.lock_timeout = Some(
            self.lock_timeout
                .unwrap_or(std::time::Duration::from_secs(5)),
        );
        let pool = etl_store::build_pool(&pool_config);
        let keys = JwtKeys::new(&JwtSecret::new(TEST_SECRET));
        let mut state = AppState::new(pool, keys.clone());
        if let Some(configure) = self.configure {
            state = configure(state);
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
        let port = listener.local_addr().expect("bound address").port();
        let config = self.http.unwrap_or(HttpConfig {
            workers: Some(2),
            ..HttpConfig::default()
        });
        let server = etl_http::serve(listener, state, &config).expect("starting the server");
        let handle = server.handle();
        tokio::spawn(server);
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            // Idle connections are dropped well before the server's 5 s
            // keep-alive closes them: a request sent on a connection the
            // server is closing fails with IncompleteMessage, a race of the
            // test's client, not the service's.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("HTTP client"),
            keys,
            server: handle,
            db,
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        TestAppBuilder::default().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A valid token for `tenant_id`, good for an hour.
    pub fn token(&self, tenant_id: i32) -> String {
        self.keys
            .issue("test", tenant_id, chrono::Duration::hours(1))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request reached the server")
    }

    /// Stops the server gracefully.
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// A tenant made for a test: its id, a token for it, and an active Jira
/// integration of its own.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: i32,
    pub token: String,
    pub integration: i32,
}

impl TestApp {
    /// Creates a tenant (active or not) directly in the database.
    pub fn create_tenant(&self, name: &str, active: bool) -> i32 {
        let mut conn = self.db.connect();
        etl_store::tenants::insert(&mut conn, &etl_store::tenants::NewTenant { name, active })
            .expect("inserting a tenant")
            .id
    }

    /// Creates an integration directly in the database.
    pub fn create_integration(&self, tenant_id: i32, provider: &str, active: bool) -> i32 {
        let mut conn = self.db.connect();
        etl_store::integrations::insert(
            &mut conn,
            &etl_store::integrations::NewIntegration {
                tenant_id,
                provider,
                name: provider,
                active,
                settings: serde_json::json!({}),
            },
        )
        .expect("inserting an integration")
        .id
    }

    /// An active tenant with an active integration and a token.
    pub fn tenant(&self, name: &str) -> TestTenant {
        let id = self.create_tenant(name, true);
        TestTenant {
            id,
            token: self.token(id),
            integration: self.create_integration(id, "jira", true),
        }
    }

    /// A request with the tenant's token.
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        tenant: &TestTenant,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&tenant.token)
    }

    /// POSTs JSON with the tenant's token.
    pub async fn post_json(
        &self,
        path: &str,
        tenant: &TestTenant,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.authed(reqwest::Method::POST, path, tenant)
            .json(body)
            .send()
            .await
            .expect("request reached the server")
    }

    /// POSTs a JSON body given as text (for bodies a `Value` cannot hold:
    /// exact numbers, `\u0000`).
    pub async fn post_text(
        &self,
        path: &str,
        tenant: &TestTenant,
        body: String,
    ) -> reqwest::Response {
        self.authed(reqwest::Method::POST, path, tenant)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request reached the server")
    }

    /// GETs with the tenant's token.
    pub async fn get_as(&self, path: &str, tenant: &TestTenant) -> reqwest::Response {
        self.authed(reqwest::Method::GET, path, tenant)
            .send()
            .await
            .expect("request reached the server")
    }

    /// Runs SQL returning one bigint (`SELECT count(*) …`) on the test database.
    pub fn count(&self, sql: &str) -> i64 {
        use etl_store::test_support::diesel_prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.connect();
        diesel::sql_query(format!("SELECT ({sql}) AS n"))
            .get_result::<Count>(&mut conn)
            .expect("counting")
            .n
    }
}

impl TestApp {
    /// Runs SQL returning one JSON text (`SELECT … ::text`) on the test
    /// database, read as JSON.
    pub fn query_json(&self, sql: &str) -> serde_json::Value {
        use etl_store::test_support::diesel_prelude::*;
        #[derive(QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        let mut conn = self.db.connect();
        let text = diesel::sql_query(format!("SELECT ({sql})::text AS t"))
            .get_result::<Text>(&mut conn)
            .expect("querying")
            .t;
        serde_json::from_str(&text).expect("JSON text")
    }

    /// Runs SQL on the test database (to set up states the API cannot make).
    pub fn execute(&self, sql: &str) -> usize {
        use etl_store::test_support::diesel_prelude::*;
        let mut conn = self.db.connect();
        diesel::sql_query(sql)
            .execute(&mut conn)
            .expect("executing SQL")
    }
}

/// Reads a response as JSON, panicking with the body when it is not.
pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.expect("response body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn poll_until<T, F, Fut>(timeout: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
