//! Settings, read once from the environment and passed explicitly.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/etl` | PostgreSQL |
//! | `RABBITMQ_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ |
//! | `ETL_BIND` | `127.0.0.1:8080` | HTTP listen address |
//! | `ETL_QUEUE` | `amqp` | `amqp` or `postgres` |
//! | `ETL_QUEUE_TYPE` | `classic` | `classic` or `quorum` RabbitMQ queues (fresh queues only) |
//! | `ETL_JWT_SECRET` | (required by `serve`, unless `--dev`) | HS256 secret |
//! | `ETL_DB_POOL_SIZE` | `10` + `ETL_WORKER_CONCURRENCY` | most database connections |
//! | `ETL_DB_CHECKOUT_TIMEOUT_MS` | `5000` | longest wait for a connection (then 503) |
//! | `ETL_DB_STATEMENT_TIMEOUT_MS` | `30000` | longest statement of an HTTP request (then 503) |
//! | `ETL_DB_LOCK_TIMEOUT_MS` | `5000` | longest lock wait of an HTTP request (then 503) |
//! | `ETL_MAX_BODY_BYTES` | `16777216` | largest request body (then 413) |
//! | `ETL_MAX_MESSAGE_BYTES` | `8388608` | largest AMQP message published |
//! | `ETL_MAX_RESPONSE_BYTES` | `33554432` | largest list answer (a page ends early) |
//! | `ETL_TLS_CA_FILE` | (none) | PEM certificates trusted for `amqps://`, besides the system roots |
//! | `ETL_WORKER_CONCURRENCY` | `8` | jobs run at once per process |
//! | `ETL_TENANT_MAX_IN_FLIGHT` | half the live worker slots, at least 1 | most transform and load jobs of one tenant running at once across the deployment |
//! | `ETL_SHUTDOWN_GRACE_S` | `25` | how long running jobs and requests may finish after SIGTERM before jobs are handed back |
//! | `ETL_REPUBLISH_AFTER_S` | `300` | a job `queued` this long without a worker starting it is published again |
//! | `ETL_RETENTION_RAW_DAYS` | `30` | days `completed`/`skipped` raw records are kept (`0`: for ever) |
//! | `ETL_RETENTION_JOB_DAYS` | `14` | days `completed`/`cancelled` jobs are kept (`0`: for ever) |
//! | `ETL_LOG_FORMAT` | `pretty` | `pretty` or `json` |
//! | `RUST_LOG` | `info` | log filter |
//!
//! An empty variable counts as unset. A malformed one stops start-up with
//! one line naming it.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use etl_http::auth::JwtSecret;
use etl_store::migrations::DatabaseUrl;
use etl_store::retention::RetentionPolicy;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/etl";
pub const DEFAULT_RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A setting that is missing or malformed: `NAME: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub name: &'static str,
    pub problem: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.problem)
    }
}

impl std::error::Error for SettingError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    Amqp,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub rabbitmq_url: String,
    pub bind: SocketAddr,
    pub queue: QueueMode,
    /// Classic or quorum RabbitMQ queues (SPEC §6).
    pub queue_type: etl_queue::QueueType,
    pub jwt_secret: Option<JwtSecret>,
    pub db_pool_size: u32,
    pub db_checkout_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub db_lock_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_message_bytes: usize,
    /// The largest list answer: a page ends early rather than pass it.
    pub max_response_bytes: usize,
    /// PEM text of `ETL_TLS_CA_FILE`, read at start-up.
    pub tls_ca_pem: Option<String>,
    pub worker_concurrency: usize,
    /// Most transform and load jobs of one tenant running at once across
    /// the deployment; `None`: half the live worker slots (SPEC §12).
    pub tenant_max_in_flight: Option<i32>,
    /// How long running jobs (and in-flight requests) may finish after a
    /// shutdown signal; then unfinished jobs are handed back.
    pub shutdown_grace: Duration,
    /// A job `queued` this long without a worker starting it is published
    /// again (its message was lost, SPEC §8).
    pub republish_after: Duration,
    /// What retention keeps (SPEC §11).
    pub retention: RetentionPolicy,
    pub log_format: LogFormat,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let worker_concurrency: usize = parse_or(&get, "ETL_WORKER_CONCURRENCY", "8", |v| {
            parse_in_range(v, 1, 1024)
        })?;
        Ok(Self {
            database_url: parse_or(&get, "DATABASE_URL", DEFAULT_DATABASE_URL, |v| {
                DatabaseUrl::parse(v)
            })?,
            rabbitmq_url: parse_or(&get, "RABBITMQ_URL", DEFAULT_RABBITMQ_URL, parse_amqp_url)?,
            bind: parse_or(&get, "ETL_BIND", DEFAULT_BIND, parse_bind)?,
            queue: parse_or(&get, "ETL_QUEUE", "amqp", |v| match v {
                "amqp" => Ok(QueueMode::Amqp),
                "postgres" => Ok(QueueMode::Postgres),
                other => Err(format!("must be `amqp` or `postgres` (got `{other}`)")),
            })?,
            queue_type: parse_or(&get, "ETL_QUEUE_TYPE", "classic", |v| v.parse())?,
            jwt_secret: get("ETL_JWT_SECRET").map(parse_jwt_secret).transpose()?,
            // Ten for the API and the machinery, and one per job running.
            db_pool_size: parse_or(
                &get,
                "ETL_DB_POOL_SIZE",
                &(10 + worker_concurrency).to_string(),
                |v| parse_in_range(v, 1, 1000),
            )?,
            db_checkout_timeout: parse_or(&get, "ETL_DB_CHECKOUT_TIMEOUT_MS", "5000", |v| {
                parse_in_range(v, 10, 600_000).map(Duration::from_millis)
            })?,
            db_statement_timeout: parse_or(&get, "ETL_DB_STATEMENT_TIMEOUT_MS", "30000", |v| {
                parse_in_range(v, 10, 3_600_000).map(Duration::from_millis)
            })?,
            db_lock_timeout: parse_or(&get, "ETL_DB_LOCK_TIMEOUT_MS", "5000", |v| {
                parse_in_range(v, 10, 3_600_000).map(Duration::from_millis)
            })?,
            max_body_bytes: parse_or(&get, "ETL_MAX_BODY_BYTES", "16777216", |v| {
                parse_in_range(v, 1024, 1 << 30)
            })?,
            max_message_bytes: parse_or(&get, "ETL_MAX_MESSAGE_BYTES", "8388608", |v| {
                // RabbitMQ refuses messages over 512 MiB whatever its settings.
                parse_in_range(v, 4096, 512 << 20)
            })?,
            max_response_bytes: parse_or(&get, "ETL_MAX_RESPONSE_BYTES", "33554432", |v| {
                parse_in_range(v, 4096, 1 << 30)
            })?,
            tls_ca_pem: get("ETL_TLS_CA_FILE")
                .map(|path| read_ca_file(path.trim()))
                .transpose()?,
            worker_concurrency,
            tenant_max_in_flight: get("ETL_TENANT_MAX_IN_FLIGHT")
                .map(|v| parse_in_range(v.trim(), 1, 100_000))
                .transpose()
                .map_err(|problem| SettingError {
                    name: "ETL_TENANT_MAX_IN_FLIGHT",
                    problem,
                })?,
            shutdown_grace: parse_or(&get, "ETL_SHUTDOWN_GRACE_S", "25", |v| {
                parse_in_range(v, 0u64, 3600).map(Duration::from_secs)
            })?,
            republish_after: parse_or(&get, "ETL_REPUBLISH_AFTER_S", "300", |v| {
                parse_in_range(v, 1u64, 7 * 24 * 3600).map(Duration::from_secs)
            })?,
            retention: RetentionPolicy::from_days(
                parse_or(&get, "ETL_RETENTION_RAW_DAYS", "30", |v| {
                    parse_in_range(v, 0, 36_500)
                })?,
                parse_or(&get, "ETL_RETENTION_JOB_DAYS", "14", |v| {
                    parse_in_range(v, 0, 36_500)
                })?,
            ),
            log_format: parse_or(&get, "ETL_LOG_FORMAT", "pretty", |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                other => Err(format!("must be `pretty` or `json` (got `{other}`)")),
            })?,
        })
    }

    /// The fewest bytes an HS256 secret may have (RFC 7518 §3.2: a key of
    /// the hash's size, 256 bits).
    pub const MIN_JWT_SECRET_BYTES: usize = 32;

    /// The JWT secret `serve` needs: from the environment, else (with
    /// `--dev` only) a freshly generated one.
    pub fn require_jwt_secret(&self, dev: bool) -> Result<JwtSecret, SettingError> {
        match (&self.jwt_secret, dev) {
            (Some(secret), _) => Ok(secret.clone()),
            (None, true) => Ok(JwtSecret::generate()),
            (None, false) => Err(SettingError {
                name: "ETL_JWT_SECRET",
                problem: "is not set; it is required to sign and check API tokens \
                          (or start with `serve --dev` for a generated one)"
                    .to_owned(),
            }),
        }
    }

    /// Where RabbitMQ is, without credentials (for logs).
    pub fn rabbitmq_host(&self) -> String {
        url::Url::parse(&self.rabbitmq_url)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port().unwrap_or(5672))))
            .unwrap_or_default()
    }

    /// RabbitMQ as these settings reach it: URL, trusted CAs, queue kind.
    pub fn amqp_config(&self) -> etl_queue::AmqpConfig {
        etl_queue::AmqpConfig::new(self.rabbitmq_url.clone())
            .with_tls_ca(self.tls_ca_pem.clone())
            .with_queue_type(self.queue_type)
    }

    pub fn pool_config(&self) -> etl_store::PoolConfig {
        etl_store::PoolConfig {
            database_url: self.database_url.as_str().to_owned(),
            max_size: self.db_pool_size,
            checkout_timeout: self.db_checkout_timeout,
            statement_timeout: Some(self.db_statement_timeout),
            lock_timeout: Some(self.db_lock_timeout),
        }
    }
}

fn parse_or<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, SettingError> {
    let value = get(name).unwrap_or_else(|| default.to_owned());
    parse(value.trim()).map_err(|problem| SettingError { name, problem })
}

fn parse_in_range<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let parsed: T = value
        .parse()
        .map_err(|_| format!("must be a whole number (got `{value}`)"))?;
    if parsed < min || parsed > max {
        return Err(format!("must be between {min} and {max} (got {parsed})"));
    }
    Ok(parsed)
}

fn parse_amqp_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        // amqps:// is TLS (rustls): the broker's certificate and host name
        // are verified against the system roots and ETL_TLS_CA_FILE.
        "amqp" | "amqps" => {}
        other => {
            return Err(format!(
                "scheme must be amqp:// or amqps:// (got {other}://)"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("names no host".to_owned());
    }
    Ok(value.to_owned())
}

/// Reads a PEM bundle and checks it holds at least one certificate.
fn read_ca_file(path: &str) -> Result<String, SettingError> {
    let problem = |problem: String| SettingError {
        name: "ETL_TLS_CA_FILE",
        problem,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read {path}: {e}")))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(problem(format!("{path} holds no PEM certificate")));
    }
    Ok(text)
}

fn parse_bind(value: &str) -> Result<SocketAddr, String> {
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| format!("not a host:port address (`{value}`: {e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("`{value}` resolves to no address"))
}

/// `ETL_JWT_SECRET`, refused when shorter than HS256 allows.
fn parse_jwt_secret(value: String) -> Result<JwtSecret, SettingError> {
    if value.len() < Settings::MIN_JWT_SECRET_BYTES {
        return Err(SettingError {
            name: "ETL_JWT_SECRET",
            problem: format!(
                "is {} bytes long; HS256 needs at least {} (RFC 7518), e.g. `openssl rand -hex 32`",
                value.len(),
                Settings::MIN_JWT_SECRET_BYTES
            ),
        });
    }
    Ok(JwtSecret::new(value))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let settings = load(&[]).expect("defaults are valid");
        assert_eq!(settings.database_url.as_str(), DEFAULT_DATABASE_URL);
        assert_eq!(settings.rabbitmq_url, DEFAULT_RABBITMQ_URL);
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.queue, QueueMode::Amqp);
        assert_eq!(settings.queue_type, etl_queue::QueueType::Classic);
        assert_eq!(settings.tenant_max_in_flight, None);
        let set = load(&[("ETL_TENANT_MAX_IN_FLIGHT", "3")]).expect("valid");
        assert_eq!(set.tenant_max_in_flight, Some(3));
        assert_eq!(settings.max_body_bytes, 16 * 1024 * 1024);
        assert!(settings.jwt_secret.is_none());
        assert_eq!(settings.db_statement_timeout, Duration::from_secs(30));
        assert_eq!(settings.db_lock_timeout, Duration::from_secs(5));
        assert_eq!(settings.max_message_bytes, 8 * 1024 * 1024);
        assert!(settings.tls_ca_pem.is_none());
        assert_eq!(settings.retention, RetentionPolicy::default());
        assert_eq!(settings.retention.raw_days, Some(30));
        assert_eq!(settings.retention.job_days, Some(14));
        assert!(load(&[("RABBITMQ_URL", "amqps://u:p@broker.example/%2f")]).is_ok());
        let off = load(&[
            ("ETL_RETENTION_RAW_DAYS", "0"),
            ("ETL_RETENTION_JOB_DAYS", "0"),
        ])
        .expect("0 turns the rules off");
        assert_eq!(
            (off.retention.raw_days, off.retention.job_days),
            (None, None)
        );
    }

    #[test]
    fn each_malformed_setting_is_named() {
        for (name, value) in [
            ("DATABASE_URL", "mysql://localhost/etl"),
            ("DATABASE_URL", "not a url"),
            ("RABBITMQ_URL", "http://localhost"),
            ("RABBITMQ_URL", "amqps:///%2f"),
            ("ETL_TLS_CA_FILE", "/nonexistent/ca.pem"),
            ("ETL_DB_STATEMENT_TIMEOUT_MS", "0"),
            ("ETL_DB_LOCK_TIMEOUT_MS", "soon"),
            ("ETL_MAX_MESSAGE_BYTES", "12"),
            ("ETL_BIND", "nowhere"),
            ("ETL_QUEUE", "kafka"),
            ("ETL_QUEUE_TYPE", "stream"),
            ("ETL_TENANT_MAX_IN_FLIGHT", "0"),
            ("ETL_TENANT_MAX_IN_FLIGHT", "many"),
            ("ETL_DB_POOL_SIZE", "0"),
            ("ETL_DB_POOL_SIZE", "ten"),
            ("ETL_MAX_BODY_BYTES", "-1"),
            ("ETL_WORKER_CONCURRENCY", "1.5"),
            ("ETL_LOG_FORMAT", "xml"),
            ("ETL_RETENTION_RAW_DAYS", "-1"),
            ("ETL_RETENTION_RAW_DAYS", "a month"),
            ("ETL_RETENTION_JOB_DAYS", "1.5"),
        ] {
            let err = load(&[(name, value)]).expect_err("malformed");
            assert_eq!(err.name, name, "{value}");
            assert!(err.to_string().starts_with(&format!("{name}: ")), "{err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn jwt_secret_is_required_unless_dev() {
        let settings = load(&[]).expect("valid");
        let err = settings.require_jwt_secret(false).expect_err("required");
        assert_eq!(err.name, "ETL_JWT_SECRET");
        assert!(settings.require_jwt_secret(true).is_ok());
        let secret = "a-secret-of-exactly-thirty-two-b";
        assert_eq!(secret.len(), 32);
        let settings = load(&[("ETL_JWT_SECRET", secret)]).expect("valid");
        assert_eq!(
            settings
                .require_jwt_secret(false)
                .map(|s| s.expose().to_owned()),
            Ok(secret.to_owned())
        );
        let err = load(&[("ETL_JWT_SECRET", &secret[1..])]).expect_err("31 bytes");
        assert_eq!(err.name, "ETL_JWT_SECRET");
        assert!(
            !err.to_string().contains(&secret[1..]),
            "never shows the secret: {err}"
        );
        assert!(
            JwtSecret::generate().expose().len() >= Settings::MIN_JWT_SECRET_BYTES,
            "--dev generates a long enough one"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let settings = load(&[("ETL_JWT_SECRET", ""), ("ETL_BIND", " ")]).expect("valid");
        assert!(settings.jwt_secret.is_none());
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
    }
}
