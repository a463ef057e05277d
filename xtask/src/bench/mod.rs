//! `cargo xtask bench …`: each benchmark measures the service beside
//! PostgreSQL's or the broker's own limit for the same work, in one run.

pub(crate) mod fairness;
pub(crate) mod ingest;
pub(crate) mod pipeline;
mod process;
pub(crate) mod prs;
pub(crate) mod queue;
pub(crate) mod stats;

pub(crate) use process::{
    build_release_server, free_port, require_tools, token, with_scratch_database, EtlServer,
};
