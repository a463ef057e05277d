//! Singleton tasks (SPEC §12): the rescuer, the janitor, the republisher and
//! retention run in one process of a deployment at a time, the holder of
//! the task's lease in PostgreSQL (`etl_store::leases`). Every process that
//! would run one keeps trying for its lease; the holder renews it every
//! [`LeaseConfig::renew_every`] and stops the task the moment a renewal
//! fails, well before the lease expires for the others. A holder that dies
//! stops renewing: another process takes the lease within `ttl` plus one
//! `renew_every` of its last renewal. A holder that stops gracefully gives
//! its leases up at once.

use std::future::Future;
use std::time::Duration;

use etl_store::PgPool;
use tokio::sync::watch;

use crate::db::db;
use crate::QueueMetrics;

/// How long a lease lasts without renewal, and how often it is renewed
/// (and, by the others, tried for).
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl Default for LeaseConfig {
    /// A dead holder's tasks resume elsewhere within 18 s (SPEC: 30 s).
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
        }
    }
}

/// Runs `start(stop)` while this process holds `task`'s lease, stopping it
/// (through `stop`) when the lease is lost or `shutdown` comes, and trying
/// again for the lease until `shutdown`. `etl_lease_held{task}` says
/// whether this process holds it.
pub async fn run_leased<F, Fut>(
    pool: PgPool,
    task: &'static str,
    holder: String,
    config: LeaseConfig,
    metrics: QueueMetrics,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()>,
{
    let gauge = metrics.lease_held.with_label_values(&[task]);
    gauge.set(0);
    let ttl_s = config.ttl.as_secs_f64();
    while !*shutdown.borrow() {
        if hold(&pool, task, &holder, ttl_s).await {
            gauge.set(1);
            tracing::info!(task, %holder, "lease taken; this process runs the task");
            let (stop, stopped) = watch::channel(false);
            let running = start(stopped);
            tokio::pin!(running);
            let mut finished = false;
            loop {
                tokio::select! {
                    _ = &mut running => {
                        finished = true;
                        break;
                    }
                    _ = stopping(&mut shutdown) => break,
                    _ = tokio::time::sleep(config.renew_every) => {
                        if !hold(&pool, task, &holder, ttl_s).await {
                            tracing::warn!(task, %holder, "lease lost; stopping the task here");
                            break;
                        }
                    }
                }
            }
            let _ = stop.send(true);
            if !finished {
                running.await;
            }
            gauge.set(0);
            if *shutdown.borrow() {
                let (task_name, me) = (task, holder.clone());
                if let Err(error) = db(&pool, move |conn| {
                    Ok(etl_store::leases::release(conn, task_name, &me)?)
                })
                .await
                {
                    tracing::warn!(task, %error, "could not give the lease up; it expires");
                }
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.renew_every) => {}
            _ = stopping(&mut shutdown) => {}
        }
    }
}

/// Resolves once `shutdown` is true (never, if its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Takes or renews the lease; an unreachable database means not held.
async fn hold(pool: &PgPool, task: &'static str, holder: &str, ttl_s: f64) -> bool {
    let holder = holder.to_owned();
    match db(pool, move |conn| {
        Ok(etl_store::leases::hold(conn, task, &holder, ttl_s)?)
    })
    .await
    {
        Ok(held) => held,
        Err(error) => {
            tracing::warn!(task, %error, "cannot reach PostgreSQL for the task's lease");
            false
        }
    }
}

/// Announces this process's worker slots (`slots`, read at each renewal)
/// in `etl_worker_slots` every `renew_every`, valid for `ttl`, until
/// `shutdown`; then takes them out. Half the live slots is the default
/// tenant cap (SPEC §12).
pub async fn announce_slots(
    pool: PgPool,
    holder: String,
    slots: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    changed: std::sync::Arc<tokio::sync::Notify>,
    config: LeaseConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let ttl_s = config.ttl.as_secs_f64();
    while !*shutdown.borrow() {
        let n = i32::try_from(slots.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i32::MAX);
        let me = holder.clone();
        if let Err(error) = db(&pool, move |conn| {
            Ok(etl_store::jobs::fairness::announce_slots(
                conn, &me, n, ttl_s,
            )?)
        })
        .await
        {
            tracing::warn!(%error, "cannot announce this process's worker slots");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.renew_every) => {}
            _ = changed.notified() => {}
            _ = stopping(&mut shutdown) => {}
        }
    }
    let me = holder.clone();
    if let Err(error) = db(&pool, move |conn| {
        Ok(etl_store::jobs::fairness::withdraw_slots(conn, &me)?)
    })
    .await
    {
        tracing::warn!(%error, "could not take this process's worker slots out; they expire");
    }
}
