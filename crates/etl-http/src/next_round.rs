//! Identical reads share one computation, never a stale one. A request
//! joins the *next* round of its key: a round starts only after every
//! request in it arrived, so its answer reflects everything committed
//! before each of them was made (a client that stored data and then asks
//! sees it), and while a round runs, the requests that arrive meanwhile
//! wait for the one after. Many dashboards polling the same figures cost
//! one computation at a time, not one each. Nothing is kept once a round
//! is answered.
//!
//! A round gathers for [`GATHER`] before it starts: clients that asked
//! together and were answered together ask again a moment apart, and
//! without the pause the first of them would start a round alone while the
//! others wait for the whole of it and then the next.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// How long a round waits, before it starts, for requests to join it:
/// short beside any computation worth sharing.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// Rounds in progress, by key.
pub struct NextRound<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

struct Slot<V> {
    /// A round is being computed (its runner will start the next).
    running: bool,
    /// Who waits for the next round.
    next: Vec<oneshot::Sender<V>>,
}

impl<K, V> Default for NextRound<K, V> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> NextRound<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The value of the next round of `key` to start, computed by the
    /// `compute` of whichever request started the rounds (the key says
    /// everything the computation depends on). `None` if the round was
    /// given up (its computation panicked).
    pub async fn join<F, Fut>(self: &Arc<Self>, key: K, compute: F) -> Option<V>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (sender, answer) = oneshot::channel();
        let start = {
            let mut slots = self.lock();
            let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
                running: false,
                next: Vec::new(),
            });
            slot.next.push(sender);
            !std::mem::replace(&mut slot.running, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move {
                // Should a computation panic, its waiters get `None` and
                // the key is free again.
                let mut guard = Release {
                    rounds: &this,
                    key: Some(key.clone()),
                };
                loop {
                    {
                        let mut slots = this.lock();
                        match slots.get(&key) {
                            Some(slot) if !slot.next.is_empty() => {}
                            Some(_) => {
                                slots.remove(&key);
                                break;
                            }
                            None => break,
                        }
                    }
                    // Someone waits: gather whoever comes a moment later.
                    tokio::time::sleep(GATHER).await;
                    let waiters = {
                        let mut slots = this.lock();
                        let Some(slot) = slots.get_mut(&key) else {
                            break;
                        };
                        std::mem::take(&mut slot.next)
                    };
                    let value = compute().await;
                    for waiter in waiters {
                        let _ = waiter.send(value.clone());
                    }
                }
                guard.key = None;
            });
        }
        answer.await.ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<V>>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Frees a key whose runner stopped before its rounds ended.
struct Release<'a, K: Eq + Hash, V> {
    rounds: &'a NextRound<K, V>,
    key: Option<K>,
}

impl<K: Eq + Hash, V> Drop for Release<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut slots = self
                .rounds
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NextRound;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn requests_arriving_during_a_round_share_the_next_one() {
        let rounds: Arc<NextRound<&'static str, usize>> = Arc::default();
        let started = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let compute = {
            let started = started.clone();
            move || {
                let started = started.clone();
                let mut released = released.clone();
                async move {
                    let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = released.wait_for(|r| *r).await;
                    n
                }
            }
        };
        let first = tokio::spawn({
            let (rounds, compute) = (rounds.clone(), compute.clone());
            async move { rounds.join("k", compute).await }
        });
        // The first round is under way before the others ask.
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..5)
            .map(|_| {
                let (rounds, compute) = (rounds.clone(), compute.clone());
                tokio::spawn(async move { rounds.join("k", compute).await })
            })
            .collect();
        // All five wait for the next round before the first one ends.
        while rounds.lock().get("k").map(|slot| slot.next.len()) != Some(5) {
            tokio::task::yield_now().await;
        }
        let _ = release.send(true);
        assert_eq!(first.await.expect("joined"), Some(1));
        for answer in later {
            // Not the round that was running when they came: the next.
            assert_eq!(answer.await.expect("joined"), Some(2));
        }
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "two rounds for six requests"
        );
        assert!(rounds.lock().is_empty(), "nothing kept");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_a_moment_apart_share_one_round() {
        let rounds: Arc<NextRound<&'static str, usize>> = Arc::default();
        let started = Arc::new(AtomicUsize::new(0));
        let compute = {
            let started = started.clone();
            move || {
                let started = started.clone();
                async move { started.fetch_add(1, Ordering::SeqCst) + 1 }
            }
        };
        let ask = || {
            let (rounds, compute) = (rounds.clone(), compute.clone());
            tokio::spawn(async move { rounds.join("k", compute).await })
        };
        let first = ask();
        // Time is paused: half the gathering pause passes on the clock
        // before the second asks, within the round the first one started.
        tokio::time::advance(super::GATHER / 2).await;
        let second = ask();
        assert_eq!(first.await.expect("joined"), Some(1));
        assert_eq!(second.await.expect("joined"), Some(1), "the same round");
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert!(rounds.lock().is_empty(), "nothing kept");
    }

    fn failing_computation() -> u8 {
        std::panic::panic_any("the computation failed")
    }

    #[tokio::test]
    async fn a_round_that_panics_answers_none_and_frees_its_key() {
        let rounds: Arc<NextRound<u8, u8>> = Arc::default();
        let answer = rounds.join(1, || async { failing_computation() }).await;
        assert_eq!(answer, None);
        assert_eq!(rounds.join(1, || async { 7 }).await, Some(7));
    }
}
