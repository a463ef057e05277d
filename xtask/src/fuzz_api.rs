//! `cargo xtask fuzz-api`: generated API cases (schemathesis) against the
//! release server on a fresh database. The served document is first
//! validated whole (openapi-spec-validator). Each answer is checked for a server
//! error and against the response schema the served `openapi.json`
//! declares; a document whose `$ref`s do not resolve fails at once.
//!
//! schemathesis is installed, pinned, into a virtualenv under `target/`
//! from PyPI the first time; the driver script is `xtask/fuzz/fuzz_api.py`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use etl_store::migrations::{self, DatabaseUrl};

use crate::bench::{build_release_server, free_port, EtlServer};

/// Pinned: schemathesis 3's generator and hypothesis move in step; the
/// validator checks the whole document before any case runs.
const PACKAGES: [&str; 3] = [
    "schemathesis==3.39.16",
    "hypothesis==6.112.5",
    "openapi-spec-validator==0.7.1",
];
const VENV: &str = "target/fuzz-api-venv";

pub fn fuzz_api(root: &Path, cases: u32) -> anyhow::Result<()> {
    let python = ensure_venv(root)?;
    build_release_server(root)?;
    crate::bench::with_scratch_database("etl_fuzz", |db| run(root, &python, db, cases))
}

fn ensure_venv(root: &Path) -> anyhow::Result<std::path::PathBuf> {
    let venv = root.join(VENV);
    let python = venv.join("bin/python");
    let pinned = Command::new(&python)
        .args([
            "-m",
            "pip",
            "show",
            "schemathesis",
            "hypothesis",
            "openapi-spec-validator",
        ])
        .output()
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            PACKAGES.iter().all(|p| {
                let version = p.split("==").nth(1).unwrap_or_default();
                text.contains(&format!("Version: {version}"))
            })
        })
        .unwrap_or(false);
    if pinned {
        return Ok(python);
    }
    println!("installing {} into {VENV}…", PACKAGES.join(" "));
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
    if !made.success() {
        bail!("could not create the virtualenv {VENV}");
    }
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES)
        .status()?;
    if !installed.success() {
        bail!("pip could not install {}", PACKAGES.join(" "));
    }
    Ok(python)
}

fn run(root: &Path, python: &Path, db_url: &DatabaseUrl, cases: u32) -> anyhow::Result<()> {
    let mut conn = etl_store::connect(db_url.as_str())?;
    migrations::run_pending(&mut conn)?;
    let seed = etl_store::seed::ensure_demo(&mut conn)?;
    let token = crate::bench::token(seed.tenant.id);
    let port = free_port()?;
    let mut server = EtlServer::start(
        root,
        "serve",
        &[("DATABASE_URL", db_url.as_str()), ("ETL_QUEUE", "postgres")],
        Some(port),
    )?;
    println!("fuzzing http://127.0.0.1:{port} with {cases} cases…");
    let status = Command::new(python)
        .arg(root.join("xtask/fuzz/fuzz_api.py"))
        .args(["--base-url", &format!("http://127.0.0.1:{port}")])
        .args(["--token", &token])
        .args(["--cases", &cases.to_string()])
        .status()
        .context("running the schemathesis driver")?;
    server.stop();
    if !status.success() {
        bail!("the API broke its own contract (see the lines above)");
    }
    Ok(())
}
