//! `cargo xtask scale`: the scale-out proof (SPEC §12). The same workload,
//! transform jobs of several tenants, run by 1, 2 and 4 `etl-server worker`
//! processes, each in a network namespace of its own: it reaches
//! PostgreSQL and RabbitMQ only through a veth pair on a private test
//! subnet (10.213.i.0/30) that this command creates, and removes again,
//! however it ends (an interrupt included). Per round: every job done
//! exactly once (each job's `job finished` log line counted across the
//! processes: 0 lost, 0 twice), jobs per second, the speedup over one
//! process, and where the CPU went (PostgreSQL's processes against the
//! workers'), which shows where PostgreSQL becomes the limit.
//!
//! PostgreSQL and RabbitMQ listen on 127.0.0.1 only here, so the host
//! side of each link runs a small TCP relay from 10.213.i.1 to them.
//! Needs root (`ip netns`), `ip` and `psql`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use etl_store::migrations::{self, DatabaseUrl};

use crate::bench::queue::{psql, rabbitmqctl, wait_for};

/// Every namespace and link this command makes starts with these, so that
/// a run interrupted hard (kill -9) is cleaned up by the next one.
const NAMESPACE_PREFIX: &str = "etl-scale-";
const HOST_LINK_PREFIX: &str = "etls-h";
const NAMESPACE_LINK_PREFIX: &str = "etls-n";

pub struct ScaleOptions {
    /// Worker processes per round, e.g. 1, 2, 4.
    pub processes: Vec<u32>,
    /// Transform jobs per round.
    pub jobs: u32,
    /// Jira issues per transform job.
    pub records_per_job: u32,
    /// Tenants the jobs are spread over (the tenant cap is half the slots:
    /// with enough tenants it never binds).
    pub tenants: u32,
    /// `ETL_WORKER_CONCURRENCY` of each process.
    pub concurrency: u32,
}

/// The worker processes running now, for the interrupt handler.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set first thing by the interrupt handler, which then cleans up and
/// exits: the main thread, whose work the cleanup breaks, leaves it to it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run's scratch database and vhost, for the interrupt handler.
static SCRATCH: Mutex<Option<(DatabaseUrl, String)>> = Mutex::new(None);

/// Drops the run's scratch database and vhost, if any.
fn remove_scratch() {
    let scratch = SCRATCH.lock().ok().and_then(|mut s| s.take());
    if let Some((db, vhost)) = scratch {
        let _ = migrations::drop_database(&db);
        let _ = rabbitmqctl(&["delete_vhost", &vhost]);
    }
}

pub fn scale(root: &Path, options: &ScaleOptions) -> anyhow::Result<()> {
    crate::bench::require_tools(&["ip", "psql"])?;
    if options.processes.is_empty() || options.processes.iter().any(|p| *p == 0 || *p > 16) {
        bail!("--processes takes 1 to 16 processes per round");
    }
    let most = options.processes.iter().copied().max().unwrap_or(1);
    remove_network()?;
    // Ctrl-C or SIGTERM: stop the workers and remove the network, then go.
    ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: stopping the workers and removing the test network");
        for pid in CHILDREN.lock().map(|c| c.clone()).unwrap_or_default() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = remove_network();
        remove_scratch();
        std::process::exit(130);
    })
    .context("installing the interrupt handler")?;
    crate::bench::build_release_server(root)?;
    let network = Network::create(most)?;
    let outcome = run(root, options, &network);
    while INTERRUPTED.load(Ordering::SeqCst) {
        // The handler is cleaning up and will exit the process.
        std::thread::park();
    }
    drop(network);
    remove_network()?;
    outcome
}

/// The namespaces, links and relays of one run; removed on drop.
struct Network {
    links: u32,
    stop: Arc<AtomicBool>,
}

impl Network {
    fn create(links: u32) -> anyhow::Result<Self> {
        let network = Self {
            links,
            stop: Arc::new(AtomicBool::new(false)),
        };
        for i in 0..links {
            let ns = format!("{NAMESPACE_PREFIX}{i}");
            let (host, inside) = (
                format!("{HOST_LINK_PREFIX}{i}"),
                format!("{NAMESPACE_LINK_PREFIX}{i}"),
            );
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/30", host_address(i)),
                "dev",
                &host,
            ])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
            ip(&[
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                &format!("10.213.{i}.2/30"),
                "dev",
                &inside,
            ])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &inside, "up"])?;
            for port in [5432, 5672] {
                relay(
                    &format!("{}:{port}", host_address(i)),
                    &format!("127.0.0.1:{port}"),
                    network.stop.clone(),
                )?;
            }
        }
        println!(
            "{links} network namespaces, each linked to the host by a veth pair on 10.213.i.0/30"
        );
        Ok(network)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for i in 0..self.links {
            // Wakes the relay's accept loop, which then sees `stop`.
            let _ = TcpStream::connect_timeout(
                &format!("{}:5432", host_address(i))
                    .parse()
                    .expect("address"),
                Duration::from_millis(200),
            );
            let _ = TcpStream::connect_timeout(
                &format!("{}:5672", host_address(i))
                    .parse()
                    .expect("address"),
                Duration::from_millis(200),
            );
        }
        let _ = remove_network();
    }
}

fn host_address(i: u32) -> String {
    format!("10.213.{i}.1")
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Deletes every namespace and host link this command may have made
/// (this run's or an interrupted one's); deleting a namespace deletes its
/// end of a veth pair, and with it the host's.
fn remove_network() -> anyhow::Result<()> {
    let namespaces = Command::new("ip").args(["netns", "list"]).output()?;
    for line in String::from_utf8_lossy(&namespaces.stdout).lines() {
        if let Some(name) = line.split_whitespace().next() {
            if name.starts_with(NAMESPACE_PREFIX) {
                ip(&["netns", "del", name])?;
            }
        }
    }
    let links = Command::new("ip").args(["-o", "link", "show"]).output()?;
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        let name = line.split(':').nth(1).map(str::trim).unwrap_or_default();
        let name = name.split('@').next().unwrap_or_default();
        if name.starts_with(HOST_LINK_PREFIX) {
            ip(&["link", "del", name])?;
        }
    }
    Ok(())
}

/// Forwards TCP connections from `from` to `to`, a thread per direction,
/// until `stop`.
fn relay(from: &str, to: &str, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(from).with_context(|| format!("listening on {from}"))?;
    let to = to.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&to) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            for (mut a, mut b) in [
                (client.try_clone(), server.try_clone()),
                (server.try_clone(), client.try_clone()),
            ]
            .into_iter()
            .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    Ok(())
}

/// One round's figures.
struct Round {
    processes: u32,
    seconds: f64,
    jobs_per_s: f64,
    records_per_s: f64,
    postgres_cores: f64,
    worker_cores: f64,
}

fn run(root: &Path, options: &ScaleOptions, network: &Network) -> anyhow::Result<()> {
    let _ = network;
    let server_url = crate::database_url()?;
    let name = format!("etl_scale_{}", std::process::id());
    let db = DatabaseUrl::parse(&server_url.with_database(&name)).map_err(anyhow::Error::msg)?;
    if let Ok(mut scratch) = SCRATCH.lock() {
        *scratch = Some((db.clone(), name.clone()));
    }
    migrations::create_database_if_missing(&db)?;
    rabbitmqctl(&["add_vhost", &name])?;
    rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"])?;
    let outcome = rounds(root, options, &db, &name);
    remove_scratch();
    let rounds = outcome?;
    let one = rounds.first().map_or(1.0, |r| r.jobs_per_s);
    println!(
        "\n{:>9} {:>9} {:>9} {:>11} {:>8} {:>16} {:>14}",
        "processes",
        "seconds",
        "jobs/s",
        "records/s",
        "speedup",
        "PostgreSQL cores",
        "worker cores"
    );
    for r in &rounds {
        println!(
            "{:>9} {:>9.2} {:>9.1} {:>11.0} {:>7.2}× {:>16.2} {:>14.2}",
            r.processes,
            r.seconds,
            r.jobs_per_s,
            r.records_per_s,
            r.jobs_per_s / one,
            r.postgres_cores,
            r.worker_cores
        );
    }
    println!(
        "(cores: CPU seconds used per second of the round; this machine has {})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}

fn rounds(
    root: &Path,
    options: &ScaleOptions,
    db: &DatabaseUrl,
    vhost: &str,
) -> anyhow::Result<Vec<Round>> {
    let mut conn = etl_store::connect(db.as_str())?;
    migrations::run_pending(&mut conn)?;
    drop(conn);
    let tenants = tenants(db, options.tenants)?;
    let mut rounds = Vec::new();
    for (n, processes) in options.processes.iter().copied().enumerate() {
        workload(db, &tenants, options, n)?;
        println!(
            "\nround {}: {} jobs of {} issues over {} tenants, {processes} worker process(es)…",
            n + 1,
            options.jobs,
            options.records_per_job,
            options.tenants
        );
        let logs = std::env::temp_dir().join(format!("etl-scale-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&logs)?;
        let postgres_before = postgres_cpu_s()?;
        let mut workers = Vec::new();
        for i in 0..processes {
            workers.push(start_worker(
                root,
                db,
                vhost,
                i,
                options.concurrency,
                &logs,
            )?);
        }
        let waited = wait_for(
            db,
            "SELECT NOT EXISTS (SELECT 1 FROM etl_job_queue WHERE status <> 'completed') AS done",
            Duration::from_secs(1800),
        );
        let postgres_s = postgres_cpu_s()? - postgres_before;
        let worker_s: f64 = workers.iter().map(|w| process_cpu_s(w.id())).sum();
        for worker in &mut workers {
            stop_worker(worker);
        }
        waited?;
        let seconds: f64 = psql(
            db,
            "SELECT EXTRACT(EPOCH FROM max(completed_at) - min(started_at)) FROM etl_job_queue",
        )?
        .trim()
        .parse()?;
        check_exactly_once(db, &logs)?;
        let _ = std::fs::remove_dir_all(&logs);
        let round = Round {
            processes,
            seconds,
            jobs_per_s: f64::from(options.jobs) / seconds,
            records_per_s: f64::from(options.jobs * options.records_per_job) / seconds,
            postgres_cores: postgres_s / seconds,
            worker_cores: worker_s / seconds,
        };
        println!(
            "  {:.2} s, {:.1} jobs/s; every job done once (0 lost, 0 twice)",
            round.seconds, round.jobs_per_s
        );
        rounds.push(round);
    }
    Ok(rounds)
}

/// `count` tenants with a Jira integration each: (tenant, integration).
fn tenants(db: &DatabaseUrl, count: u32) -> anyhow::Result<Vec<(i32, i32)>> {
    let mut made = Vec::new();
    for t in 0..count {
        let tenant: i32 = psql(
            db,
            &format!("INSERT INTO tenants (name) VALUES ('scale-{t}') RETURNING id"),
        )?
        .trim()
        .parse()?;
        let integration: i32 = psql(
            db,
            &format!(
                "INSERT INTO integrations (tenant_id, provider, name) VALUES ({tenant}, 'jira', 'j') RETURNING id"
            ),
        )?
        .trim()
        .parse()?;
        made.push((tenant, integration));
    }
    Ok(made)
}

/// A fresh round's raw issues (`processing`, as `/pipeline/process` leaves
/// them) and the transform jobs covering them, spread over the tenants.
fn workload(
    db: &DatabaseUrl,
    tenants: &[(i32, i32)],
    options: &ScaleOptions,
    round: usize,
) -> anyhow::Result<()> {
    psql(
        db,
        "TRUNCATE etl_job_queue, raw_extraction_data, work_items, work_item_changes, work_item_histories,
                  pull_request_work_items",
    )?;
    let records = options.jobs * options.records_per_job;
    let count = tenants.len();
    let tenant_ids: Vec<String> = tenants.iter().map(|(t, _)| t.to_string()).collect();
    let integration_ids: Vec<String> = tenants.iter().map(|(_, i)| i.to_string()).collect();
    psql(
        db,
        &format!(
            "INSERT INTO raw_extraction_data (tenant_id, integration_id, entity_type, external_id, raw_data, processing_status)
             SELECT (ARRAY[{tenants}])[1 + g % {count}], (ARRAY[{integrations}])[1 + g % {count}],
                    'jira_issues', 'r{round}-' || g, jsonb_build_object(
                    'id', 'r{round}-' || g, 'key', 'SCALE-' || g,
                    'fields', jsonb_build_object(
                        'summary', 'Checkout fails for basket ' || g,
                        'project', jsonb_build_object('key', 'SCALE'),
                        'issuetype', jsonb_build_object('name', 'Bug', 'subtask', false),
                        'status', jsonb_build_object('id', '10001', 'name', 'Done',
                                                     'statusCategory', jsonb_build_object('key', 'done')),
                        'created', '2024-01-15T10:00:00.000+0000',
                        'updated', '2024-02-01T00:00:00.000+0000',
                        'resolutiondate', '2024-01-20T10:00:00.000+0000')),
                    'processing'
               FROM generate_series(1, {records}) AS g;
             INSERT INTO etl_job_queue (tenant_id, job_type, entity_type, payload, priority)
             SELECT tenant_id, 'transform', 'jira_issues',
                    jsonb_build_object('raw_data_ids', jsonb_agg(id ORDER BY id)), 5
               FROM (SELECT id, tenant_id,
                            (row_number() OVER (PARTITION BY tenant_id ORDER BY id) - 1) / {per_job} AS chunk
                       FROM raw_extraction_data) AS r
              GROUP BY tenant_id, chunk",
            tenants = tenant_ids.join(","),
            integrations = integration_ids.join(","),
            per_job = options.records_per_job,
        ),
    )?;
    psql(db, "VACUUM ANALYZE")?;
    Ok(())
}

/// `etl-server worker` in namespace `i`, reaching PostgreSQL and RabbitMQ
/// at the host's end of its link; its JSON log (stderr) in `logs`.
fn start_worker(
    root: &Path,
    db: &DatabaseUrl,
    vhost: &str,
    i: u32,
    concurrency: u32,
    logs: &Path,
) -> anyhow::Result<Child> {
    let host = host_address(i);
    let database = db
        .as_str()
        .replacen("127.0.0.1", &host, 1)
        .replacen("localhost", &host, 1);
    let log = std::fs::File::create(logs.join(format!("worker-{i}.log")))?;
    let binary: PathBuf = root.join("target/release/etl-server");
    let child = Command::new("ip")
        .args(["netns", "exec", &format!("{NAMESPACE_PREFIX}{i}")])
        .arg(binary)
        .arg("worker")
        .env("DATABASE_URL", database)
        .env(
            "RABBITMQ_URL",
            format!("amqp://guest:guest@{host}:5672/{vhost}"),
        )
        .env("ETL_WORKER_CONCURRENCY", concurrency.to_string())
        .env("ETL_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting a worker in its namespace")?;
    if let Ok(mut children) = CHILDREN.lock() {
        children.push(child.id());
    }
    Ok(child)
}

/// SIGTERM, then waits (the process stops within its grace).
fn stop_worker(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    if let Ok(mut children) = CHILDREN.lock() {
        children.retain(|pid| *pid != child.id());
    }
}

/// Every job completed, and each run once: one `job finished` line per job
/// across the workers' logs, its outcome `completed`.
fn check_exactly_once(db: &DatabaseUrl, logs: &Path) -> anyhow::Result<()> {
    let mut runs: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(logs)? {
        let file = std::fs::File::open(entry?.path())?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            if !line.contains("job finished") {
                continue;
            }
            let logged: serde_json::Value = serde_json::from_str(&line)?;
            if let Some(id) = logged["span"]["job_id"].as_i64() {
                runs.entry(id).or_default().push(
                    logged["fields"]["outcome"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned(),
                );
            }
        }
    }
    let jobs: Vec<i64> = psql(
        db,
        "SELECT id FROM etl_job_queue WHERE status = 'completed' ORDER BY id",
    )?
    .lines()
    .filter_map(|l| l.trim().parse().ok())
    .collect();
    let total: i64 = psql(db, "SELECT count(*) FROM etl_job_queue")?
        .trim()
        .parse()?;
    let lost = total - i64::try_from(jobs.len())?;
    let twice = runs.values().filter(|r| r.len() > 1).count();
    let unlogged = jobs.iter().filter(|id| !runs.contains_key(id)).count();
    let not_completed = runs
        .values()
        .filter(|r| r.iter().any(|o| o != "completed"))
        .count();
    if lost != 0 || twice != 0 || unlogged != 0 || not_completed != 0 {
        bail!(
            "not exactly once: {lost} lost, {twice} run twice, {unlogged} without a log line, {not_completed} with another outcome"
        );
    }
    let pending: i64 = psql(
        db,
        "SELECT count(*) FROM raw_extraction_data WHERE processing_status <> 'completed'",
    )?
    .trim()
    .parse()?;
    if pending != 0 {
        bail!("{pending} raw records not completed");
    }
    Ok(())
}

/// CPU seconds of PostgreSQL: the postmaster with its reaped children, and
/// its live children.
fn postgres_cpu_s() -> anyhow::Result<f64> {
    let pid_file = std::fs::read_dir("/var/run/postgresql")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pid"))
        .context("no PostgreSQL pid file in /var/run/postgresql")?;
    let postmaster: u32 = std::fs::read_to_string(pid_file)?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()?;
    let mut total = cpu_fields(postmaster, true);
    for entry in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if parent_of(pid) == Some(postmaster) {
            total += cpu_fields(pid, false);
        }
    }
    Ok(total)
}

fn process_cpu_s(pid: u32) -> f64 {
    cpu_fields(pid, false)
}

/// utime + stime (and the reaped children's, with `children`) in seconds.
fn cpu_fields(pid: u32, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may hold spaces: state is 3rd.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17 (1-based), 12–15 here.
    let ticks = fields.get(11).copied().unwrap_or(0.0)
        + fields.get(12).copied().unwrap_or(0.0)
        + if children {
            fields.get(13).copied().unwrap_or(0.0) + fields.get(14).copied().unwrap_or(0.0)
        } else {
            0.0
        };
    ticks / 100.0
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}
