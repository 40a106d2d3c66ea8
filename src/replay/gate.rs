//! The order a replay keeps: every recorded event (a send, an answer, a
//! push) has its place in the capture's time order, and a send goes only
//! once every event recorded before it has happened live. Lock-step per
//! connection follows (a client that waited for an answer waits again),
//! and so does causality across connections (bob's newsync after the
//! newnotify alice's send caused; a webwxsync after the synccheck answer
//! on another connection), without copying the capture's timing. An event
//! that does not happen live within the stall time is given up (counted
//! missing by its session), so a server that answers differently cannot
//! hang a replay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Happened,
    /// Given up after the stall time.
    GaveUp,
}

#[derive(Debug)]
struct State {
    done: Vec<Option<Done>>,
    prefix: usize,
}

/// The events of one replay (one clone), in recorded order.
#[derive(Debug, Clone)]
pub struct Gate {
    state: Arc<Mutex<State>>,
    prefix: watch::Sender<usize>,
}

impl Gate {
    /// A gate over `n` events, numbered in recorded order.
    pub fn new(n: usize) -> Gate {
        Gate {
            state: Arc::new(Mutex::new(State {
                done: vec![None; n],
                prefix: 0,
            })),
            prefix: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks event `i` done (the first mark wins). Returns how it ended.
    pub fn done(&self, i: usize, how: Done) -> Done {
        let mut s = self.lock();
        let Some(slot) = s.done.get_mut(i) else {
            return how;
        };
        let how = *slot.get_or_insert(how);
        let mut p = s.prefix;
        while p < s.done.len() && s.done[p].is_some() {
            p += 1;
        }
        if p != s.prefix {
            s.prefix = p;
            self.prefix.send_replace(p);
        }
        how
    }

    /// How event `i` ended, if it has.
    pub fn state(&self, i: usize) -> Option<Done> {
        self.lock().done.get(i).copied().flatten()
    }

    /// Waits until every event before `i` is done.
    pub async fn wait(&self, i: usize) {
        let mut rx = self.prefix.subscribe();
        let _ = rx.wait_for(|&p| p >= i).await;
    }

    /// Number of events done from the start, in order.
    pub fn prefix(&self) -> usize {
        self.lock().prefix
    }

    pub fn len(&self) -> usize {
        self.lock().done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives up the first event not done whenever nothing moved for
    /// `stall`; returns when all events are done.
    pub async fn watchdog(&self, stall: Duration) {
        let mut rx = self.prefix.subscribe();
        loop {
            let p = *rx.borrow_and_update();
            if p >= self.len() {
                return;
            }
            match tokio::time::timeout(stall, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return,
                Err(_) => {
                    if self.prefix() == p {
                        self.done(p, Done::GaveUp);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_send_waits_for_every_earlier_event() {
        let g = Gate::new(3);
        let g2 = g.clone();
        let waiter = tokio::spawn(async move {
            g2.wait(2).await;
            g2.prefix()
        });
        g.done(1, Done::Happened);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        g.done(0, Done::Happened);
        assert_eq!(waiter.await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_gives_up_a_stalled_event() {
        let g = Gate::new(2);
        g.done(1, Done::Happened);
        let w = tokio::spawn({
            let g = g.clone();
            async move { g.watchdog(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(6)).await;
        w.await.unwrap();
        assert_eq!(g.state(0), Some(Done::GaveUp));
        // A late arrival does not change how it ended.
        assert_eq!(g.done(0, Done::Happened), Done::GaveUp);
    }
}
