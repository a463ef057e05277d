//! The one wrapper around a release `etl-server` child process that the
//! benchmarks and the API fuzzer start: built once, started with the
//! bench's settings, waited for until `/ready` answers 200, its peak RSS
//! read, stopped with SIGTERM (and killed on drop should that fail).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The JWT secret every bench server signs with.
pub(crate) const SECRET: &str = "bench-secret-of-at-least-32-bytes";

/// A token for `tenant`, good for the length of a bench.
pub(crate) fn token(tenant: i32) -> String {
    use etl_http::auth::{JwtKeys, JwtSecret};
    JwtKeys::new(&JwtSecret::new(SECRET)).issue("bench", tenant, chrono::Duration::hours(1))
}

pub(crate) fn build_release_server(root: &Path) -> anyhow::Result<()> {
    println!("building the release server…");
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "etl-server"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    Ok(())
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A release `etl-server` child process.
pub(crate) struct EtlServer {
    child: Child,
}

impl EtlServer {
    /// Runs `etl-server <command>` with `env` besides the bench's secret and
    /// a quiet log; with a `port`, it serves HTTP there and this waits (30 s
    /// at most) until `/ready` answers 200.
    pub(crate) fn start(
        root: &Path,
        command: &str,
        env: &[(&str, &str)],
        port: Option<u16>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(root.join("target/release/etl-server"));
        cmd.arg(command)
            .env("ETL_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        if let Some(port) = port {
            cmd.env("ETL_BIND", format!("127.0.0.1:{port}"));
        }
        let server = Self {
            child: cmd.spawn().context("starting the release etl-server")?,
        };
        if let Some(port) = port {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !ready(port) {
                if Instant::now() > deadline {
                    bail!("etl-server did not become ready on port {port}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(server)
    }

    /// The process's peak resident memory so far (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Stops it gracefully (SIGTERM) and waits for it.
    pub(crate) fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for EtlServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

/// Runs `work` on a database of its own (`<prefix>_<pid>` on the server of
/// `DATABASE_URL`), created first and dropped afterwards whatever happened.
pub(crate) fn with_scratch_database<T>(
    prefix: &str,
    work: impl FnOnce(&etl_store::migrations::DatabaseUrl) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use etl_store::migrations::{self, DatabaseUrl};
    let server_url = crate::database_url()?;
    let name = format!("{prefix}_{}", std::process::id());
    let db = DatabaseUrl::parse(&server_url.with_database(&name))
        .map_err(|e| anyhow::anyhow!("scratch database URL: {e}"))?;
    migrations::create_database_if_missing(&db)?;
    let outcome = work(&db);
    let _ = migrations::drop_database(&db);
    outcome
}

/// Fails with how to install them unless every tool answers `--version`.
pub(crate) fn require_tools(tools: &[&str]) -> anyhow::Result<()> {
    for tool in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is not installed (Debian: apt-get install wrk postgresql-client)");
        }
    }
    Ok(())
}
