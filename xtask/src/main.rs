//! Developer commands (`cargo xtask …`, SPEC §10). They use the same crates
//! as the server, so `migrate` here is exactly `etl-server migrate`.

mod bench;
mod demo;
mod fuzz_api;
mod scale;
mod tidy;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use etl_http::auth::{JwtKeys, JwtSecret};
use etl_store::migrations::{self, DatabaseUrl};

pub(crate) const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/etl";

/// Developer commands of the ETL service. The database is `DATABASE_URL`
/// (default postgres://postgres@127.0.0.1:5432/etl).
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Manage the schema; each action creates the database when missing.
    Migrate {
        #[arg(value_enum)]
        action: MigrateAction,
    },
    /// Create (or find) the demo tenant with a Jira and a GitHub integration.
    Seed,
    /// Tenants of DATABASE_URL.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Print an API token for a tenant of DATABASE_URL, signed with
    /// ETL_JWT_SECRET (a tenant that does not exist or is inactive is
    /// refused: the server would refuse the token).
    Token {
        /// The tenant the token acts for.
        #[arg(long)]
        tenant: i32,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// The token's subject.
        #[arg(long, default_value = "xtask")]
        sub: String,
    },
    /// Run exactly what CI runs (`.ci/run`): fmt, clippy, cargo-deny, tests, API fuzzing.
    Check,
    /// Measure against PostgreSQL's own limit for the same work, in one run.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Generated API cases (schemathesis, pinned in target/fuzz-api-venv)
    /// against the release server on a fresh database: no 5xx, every answer
    /// as the served openapi.json declares it. Prints `cases N, server
    /// errors E, schema violations V`; fails unless E and V are 0.
    FuzzApi {
        /// Cases to generate, spread over every operation.
        #[arg(long, default_value_t = 1000)]
        cases: u32,
    },
    /// Against a running `serve --dev`: store the project's fixtures and N
    /// generated Jira issues and N GitHub pull requests through the API,
    /// process them with progress bars, then print a summary table and the
    /// dashboard's address. Integrations come from DATABASE_URL's demo seed.
    Demo {
        /// The server's address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The token `serve --dev` printed (or set ETL_TOKEN).
        #[arg(long, env = "ETL_TOKEN", hide_env_values = true)]
        token: String,
        /// Generated issues (and as many pull requests).
        #[arg(long, default_value_t = 500)]
        issues: u32,
        /// Longest wait for processing, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// The scale-out proof: the same transform jobs run by 1, 2 and 4
    /// `worker` processes, each in its own network namespace reaching
    /// PostgreSQL and RabbitMQ over a veth pair (made and removed here, an
    /// interrupt included): every job done exactly once, the speedup, and
    /// where the CPU went. Needs root, ip and psql.
    Scale {
        /// Worker processes per round.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        processes: Vec<u32>,
        /// Transform jobs per round.
        #[arg(long, default_value_t = 400)]
        jobs: u32,
        /// Jira issues per job.
        #[arg(long, default_value_t = 50)]
        records_per_job: u32,
        /// Tenants the jobs are spread over.
        #[arg(long, default_value_t = 8)]
        tenants: u32,
        /// ETL_WORKER_CONCURRENCY of each process.
        #[arg(long, default_value_t = 2)]
        concurrency: u32,
    },
    /// (Used by `bench queue`.) A bare lapin publish loop with confirms.
    #[command(hide = true)]
    BenchPublishLoop {
        #[arg(long)]
        url: String,
        #[arg(long)]
        messages: u32,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Raw-data ingest: single store vs pgbench, batch store vs \copy, and
    /// the server's peak RSS. Needs wrk, pgbench and psql.
    Ingest {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Concurrent connections for the single-record comparison.
        #[arg(long, default_value_t = 32)]
        connections: u32,
    },
    /// Jira issues from raw rows to work_items through the pipeline, beside
    /// PostgreSQL's INSERT … SELECT doing the same mapping. Needs psql,
    /// curl and rabbitmqctl.
    Pipeline {
        /// Raw issues to process.
        #[arg(long, default_value_t = 100_000)]
        issues: u32,
        /// Records per transform job.
        #[arg(long, default_value_t = 1000)]
        batch_size: u32,
        /// Issues with 12 changelog histories of 1–3 items each, loaded
        /// into work_item_changes too (and the baseline into its twin).
        #[arg(long)]
        history: bool,
        /// Baseline-then-pipeline rounds; the median round is reported (on a
        /// shared machine either side alone varies by a third between runs).
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Instead: N pull requests (default 20,000) with commits, reviews
        /// and the issues they name, and GET /flow-metrics at size.
        #[arg(long, num_args = 0..=1, default_missing_value = "20000")]
        prs: Option<u32>,
    },
    /// The outbox relay beside a bare lapin publish loop with confirms, and
    /// POST-to-queued latency. Needs psql, wrk and rabbitmqctl.
    Queue {
        /// Jobs published in the throughput comparison.
        #[arg(long, default_value_t = 20_000)]
        jobs: u32,
        /// Seconds of POST load for the latency measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
    },
    /// Tenant B's jobs alone, then behind tenant A's backlog, through one
    /// server: B's time behind A as a multiple of B's time alone (SPEC §12:
    /// at most 2×). Needs psql.
    Fairness {
        /// Tenant A's waiting jobs.
        #[arg(long, default_value_t = 20_000)]
        backlog: u32,
        /// Tenant B's jobs.
        #[arg(long, default_value_t = 100)]
        jobs: u32,
    },
    /// GET /stats p50/p99 at size, and single-store ingest beside a prune of
    /// 1,000,000 rows as a ratio to ingest alone. Needs wrk, pgbench, psql.
    Stats {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Raw records of the tenant the stats are read for.
        #[arg(long, default_value_t = 1_000_000)]
        raw_records: u32,
        /// Jobs of that tenant.
        #[arg(long, default_value_t = 100_000)]
        jobs: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MigrateAction {
    /// Apply every pending migration.
    Apply,
    /// List every migration, applied or pending.
    Status,
    /// Revert the newest applied migration.
    Revert,
    /// Revert the newest applied migration and apply it again.
    Redo,
    /// Drop every table, then apply every migration.
    Reset,
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Create a tenant with a Jira and a GitHub integration; prints its id.
    Add {
        /// The tenant's name (unique).
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Task::Migrate { action } => migrate(action),
        Task::Seed => seed(),
        Task::Tenant {
            action: TenantAction::Add { name },
        } => add_tenant(&name),
        Task::Token { tenant, ttl, sub } => token(tenant, ttl, &sub),
        Task::Check => check(),
        Task::Bench {
            which:
                Bench::Ingest {
                    seconds,
                    connections,
                },
        } => workspace_root().and_then(|root| {
            bench::ingest::ingest(
                &root,
                &bench::ingest::IngestOptions {
                    seconds,
                    connections,
                },
            )
        }),
        Task::Bench {
            which:
                Bench::Stats {
                    seconds,
                    raw_records,
                    jobs,
                },
        } => workspace_root().and_then(|root| {
            bench::stats::stats(
                &root,
                &bench::stats::StatsOptions {
                    seconds,
                    raw_records,
                    jobs,
                },
            )
        }),
        Task::Bench {
            which: Bench::Fairness { backlog, jobs },
        } => workspace_root().and_then(|root| {
            bench::fairness::fairness(&root, &bench::fairness::FairnessOptions { backlog, jobs })
        }),
        Task::Bench {
            which: Bench::Queue { jobs, seconds },
        } => workspace_root().and_then(|root| {
            bench::queue::queue(&root, &bench::queue::QueueOptions { jobs, seconds })
        }),
        Task::Bench {
            which:
                Bench::Pipeline {
                    issues,
                    batch_size,
                    history,
                    rounds,
                    prs,
                },
        } => workspace_root().and_then(|root| match prs {
            Some(n) => bench::prs::prs(&root, n, batch_size),
            None => bench::pipeline::pipeline(
                &root,
                &bench::pipeline::PipelineOptions {
                    issues,
                    history,
                    batch_size,
                    rounds,
                },
            ),
        }),
        Task::Demo {
            url,
            token,
            issues,
            timeout,
        } => workspace_root().and_then(|root| {
            demo::run(
                &root,
                demo::DemoOptions {
                    url,
                    token,
                    issues,
                    timeout: std::time::Duration::from_secs(timeout),
                },
            )
        }),
        Task::FuzzApi { cases } => {
            workspace_root().and_then(|root| fuzz_api::fuzz_api(&root, cases))
        }
        Task::Scale {
            processes,
            jobs,
            records_per_job,
            tenants,
            concurrency,
        } => workspace_root().and_then(|root| {
            scale::scale(
                &root,
                &scale::ScaleOptions {
                    processes,
                    jobs,
                    records_per_job,
                    tenants,
                    concurrency,
                },
            )
        }),
        Task::BenchPublishLoop { url, messages } => bench::queue::publish_loop(&url, messages),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn database_url() -> anyhow::Result<DatabaseUrl> {
    let text = std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    DatabaseUrl::parse(&text).map_err(|problem| anyhow::anyhow!("DATABASE_URL: {problem}"))
}

fn connect_creating() -> anyhow::Result<etl_store::PgConnection> {
    let url = database_url()?;
    if migrations::create_database_if_missing(&url)
        .with_context(|| format!("creating database `{}`", url.database_name()))?
    {
        println!("created database {}", url.database_name());
    }
    etl_store::connect(url.as_str()).context("connecting to DATABASE_URL")
}

fn migrate(action: MigrateAction) -> anyhow::Result<()> {
    let mut conn = connect_creating()?;
    match action {
        MigrateAction::Apply => print_applied(migrations::run_pending(&mut conn)?),
        MigrateAction::Status => {
            for state in migrations::status(&mut conn)? {
                let mark = if state.applied { "applied" } else { "pending" };
                println!("{mark:<8} {}", state.name);
            }
        }
        MigrateAction::Revert => match migrations::revert_last(&mut conn)? {
            Some(version) => println!("reverted {version}"),
            None => println!("nothing to revert"),
        },
        MigrateAction::Redo => {
            let Some(version) = migrations::revert_last(&mut conn)? else {
                bail!("nothing to redo: no migration is applied");
            };
            println!("reverted {version}");
            print_applied(migrations::run_pending(&mut conn)?);
        }
        MigrateAction::Reset => {
            migrations::drop_all_tables(&mut conn)?;
            println!("dropped every table");
            print_applied(migrations::run_pending(&mut conn)?);
        }
    }
    Ok(())
}

fn print_applied(applied: Vec<String>) {
    if applied.is_empty() {
        println!("database is up to date");
    }
    for version in applied {
        println!("applied {version}");
    }
}

fn seed() -> anyhow::Result<()> {
    let mut conn = connect_creating()?;
    if migrations::has_pending(&mut conn)? {
        print_applied(migrations::run_pending(&mut conn)?);
    }
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    println!(
        "tenant {} (id {}); integrations: jira {}, github {}",
        seed.tenant.name, seed.tenant.id, seed.jira.id, seed.github.id
    );
    Ok(())
}

fn add_tenant(name: &str) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.contains('\0') {
        bail!("NAME must be 1–200 characters without NUL");
    }
    let mut conn = connect_creating()?;
    if migrations::has_pending(&mut conn)? {
        print_applied(migrations::run_pending(&mut conn)?);
    }
    if let Some(existing) = etl_store::tenants::find_by_name(&mut conn, name)? {
        bail!(
            "a tenant called `{name}` exists already (id {})",
            existing.id
        );
    }
    let made = etl_store::seed::ensure_tenant(
        &mut conn,
        name,
        &format!("{name} Jira"),
        &format!("{name} GitHub"),
    )?;
    eprintln!(
        "tenant {name} created; integrations: jira {}, github {}; a token: cargo xtask token --tenant {}",
        made.jira.id, made.github.id, made.tenant.id
    );
    println!("{}", made.tenant.id);
    Ok(())
}

fn token(tenant: i32, ttl: i64, sub: &str) -> anyhow::Result<()> {
    let secret = std::env::var("ETL_JWT_SECRET")
        .ok()
        .filter(|v| !v.is_empty())
        .context("ETL_JWT_SECRET: is not set; tokens are signed with the server's secret")?;
    if ttl <= 0 {
        bail!("--ttl must be a positive number of seconds");
    }
    let url = database_url()?;
    let mut conn = etl_store::connect(url.as_str())
        .with_context(|| format!("connecting to DATABASE_URL to find tenant {tenant}"))?;
    match etl_store::tenants::find(&mut conn, tenant)? {
        None => bail!(
            "tenant {tenant} does not exist in database `{}` (cargo xtask tenant add NAME creates one)",
            url.database_name()
        ),
        Some(found) if !found.active => {
            bail!("tenant {tenant} ({}) is inactive: the server refuses its tokens", found.name)
        }
        Some(_) => {}
    }
    let keys = JwtKeys::new(&JwtSecret::new(secret));
    println!(
        "{}",
        keys.issue(sub, tenant, chrono::Duration::seconds(ttl))
    );
    Ok(())
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_owned())
}

fn check() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let status = Command::new("bash")
        .arg(root.join(".ci/run"))
        .current_dir(&root)
        .status()
        .context("running .ci/run")?;
    if !status.success() {
        bail!(".ci/run failed ({status})");
    }
    Ok(())
}
