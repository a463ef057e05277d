//! Black-box tests of the HTTP API: a real server on an ephemeral port, over
//! real HTTP, against its own PostgreSQL database.

mod auth;
mod console;
mod errors;
mod flow;
mod idempotency;
mod ingest;
mod jobs;
mod ops;
mod raw_data;
mod truth;
