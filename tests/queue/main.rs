//! The job queue against the real RabbitMQ (each test in its own vhost) and
//! the real PostgreSQL: what is published, in which order, and what workers
//! do with it, in both queue modes.

mod console;
mod containment;
mod e2e;
mod fairness;
mod harness;
mod lost;
mod machinery;
mod messages;
mod quorum;
mod stalls;
mod tls;
