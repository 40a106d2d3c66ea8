//! [`listen`]: identify, newsync until ContinueFlag is 0, then wait for
//! newnotify pushes (heartbeat in between), reconnecting with backoff; and
//! the pieces the web client's listen shares ([`Listener`], [`Mailbox`],
//! [`Link`], [`listen_on`]).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::{sleep, timeout, timeout_at, Instant};

use super::{ClientError, Config, Session};
use crate::body::synckey::SyncKey;
use crate::net::messages::{ChatMessage, Receipt};
use crate::net::KEY_MESSAGES;

/// Where [`listen`] delivers.
pub trait ListenSink {
    /// A new message; return `false` to stop listening.
    fn message(&mut self, m: &ChatMessage) -> bool;
    /// A receipt for a message this user sent (not counted as a message).
    fn receipt(&mut self, _r: &Receipt) {}
    /// Connected and logged in: messages sent from now on will come.
    fn connected(&mut self) {}
    /// The connection failed; the next attempt comes after `delay`.
    fn reconnecting(&mut self, _error: &ClientError, _delay: Duration) {}
}

/// When [`listen`] stops.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// Stop after this many messages.
    pub count: Option<usize>,
    /// Stop at this instant (the outcome says it timed out).
    pub deadline: Option<Instant>,
}

/// How [`listen`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOutcome {
    pub received: usize,
    pub timed_out: bool,
}

pub(in crate::net) enum Stop {
    /// Count reached or the sink said stop.
    Done,
    TimedOut,
}

/// Hands messages to the sink: counts them and drops repeats.
pub(in crate::net) struct Listener<'a, S: ListenSink> {
    sink: &'a mut S,
    count: Option<usize>,
    received: usize,
    seen: HashSet<u64>,
}

impl<S: ListenSink> Listener<'_, S> {
    /// Hands over a page's new messages. `Err(last)` when it stopped
    /// inside the page (whose key must then not be presented): `last` is
    /// the mailbox position of the last message handled, when the server
    /// gave positions, the key to present instead (it confirms what was
    /// handled and nothing after it).
    pub(in crate::net) fn page(&mut self, messages: &[ChatMessage]) -> Result<(), Option<u64>> {
        let mut last = None;
        for m in messages {
            if self.count.is_some_and(|c| self.received >= c) {
                return Err(last);
            }
            // Handled: now, or before (a page offered again).
            last = m.seq.or(last);
            if !self.seen.insert(m.msg_id) {
                continue;
            }
            self.received += 1;
            if !self.sink.message(m) {
                return Err(last);
            }
        }
        Ok(())
    }

    pub(in crate::net) fn done(&self) -> bool {
        self.count.is_some_and(|c| self.received >= c)
    }

    /// Syncs until the server has no more: each page's messages are handed
    /// over before its key is adopted (so presented, which confirms them).
    /// Whether any message came, or why to stop.
    pub(in crate::net) async fn drain<M: Mailbox>(
        &mut self,
        s: &mut M,
    ) -> Result<Result<bool, Stop>, ClientError> {
        let mut any = false;
        loop {
            let (messages, receipts, more, key) = s.fetch().await?;
            for r in &receipts {
                self.sink.receipt(r);
            }
            if let Err(last) = self.page(&messages) {
                // What was handled is confirmed at close, not the rest.
                if let Some(seq) = last {
                    s.adopt_key(M::key_at(&key, seq));
                }
                return Ok(Err(Stop::Done));
            }
            any |= !messages.is_empty();
            s.adopt_key(key);
            if self.done() {
                return Ok(Err(Stop::Done));
            }
            if !more {
                return Ok(Ok(any));
            }
        }
    }
}

/// One page as [`Mailbox::fetch`] gives it: messages, receipts, whether
/// more follow, the key it issued.
pub(in crate::net) type Fetched<K> = (Vec<ChatMessage>, Vec<Receipt>, bool, K);

/// A session that syncs pages of messages: the long link's newsync, the
/// web's webwxsync.
pub(in crate::net) trait Mailbox {
    type Key;
    /// One page: its messages, its receipts, whether more follow, the key
    /// it issued.
    async fn fetch(&mut self) -> Result<Fetched<Self::Key>, ClientError>;
    /// Makes `key` the one presented next.
    fn adopt_key(&mut self, key: Self::Key);
    /// `key` moved to mailbox position `seq` (the key that confirms up to
    /// it).
    fn key_at(key: &Self::Key, seq: u64) -> Self::Key;
}

impl Mailbox for Session {
    type Key = SyncKey;

    async fn fetch(&mut self) -> Result<Fetched<SyncKey>, ClientError> {
        let page = self.sync().await?;
        Ok((page.messages, page.receipts, page.more, page.synckey))
    }

    fn adopt_key(&mut self, key: SyncKey) {
        self.adopt(key);
    }

    fn key_at(key: &SyncKey, seq: u64) -> SyncKey {
        key_at(key, seq)
    }
}

/// `key` with its message position ([`KEY_MESSAGES`]) set to `seq`.
pub(in crate::net) fn key_at(key: &SyncKey, seq: u64) -> SyncKey {
    let mut key = key.clone();
    match key.keys.iter_mut().find(|(k, _)| *k == KEY_MESSAGES) {
        Some((_, v)) => *v = seq,
        None => key.keys.push((KEY_MESSAGES, seq)),
    }
    key
}

/// A way to be connected for [`listen`]: the long link here, the web in
/// `webclient`.
pub(in crate::net) trait Link {
    type Session;
    /// Connects and logs in.
    async fn open(&mut self) -> Result<Self::Session, ClientError>;
    /// Receives until the listener is done, an error, or `deadline`.
    async fn run<S: ListenSink>(
        &mut self,
        l: &mut Listener<'_, S>,
        s: &mut Self::Session,
        deadline: Instant,
    ) -> Result<Stop, ClientError>;
    /// After a run that stopped: confirms what was handled (best effort).
    async fn close(&mut self, s: Self::Session);
}

/// The long link: identify with the last handled key, newsync until
/// ContinueFlag is 0, then wait for newnotify (heartbeat in between).
struct LongLink<'a> {
    config: &'a Config,
    key: SyncKey,
}

impl Link for LongLink<'_> {
    type Session = Session;

    async fn open(&mut self) -> Result<Session, ClientError> {
        Session::connect(self.config, self.key.clone()).await
    }

    async fn run<S: ListenSink>(
        &mut self,
        l: &mut Listener<'_, S>,
        s: &mut Session,
        deadline: Instant,
    ) -> Result<Stop, ClientError> {
        let heartbeat = self.config.heartbeat;
        let mut beat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        let run = async {
            if let Err(stop) = l.drain(s).await? {
                return Ok(stop);
            }
            loop {
                tokio::select! {
                    r = s.wait_push() => {
                        r?;
                        if let Err(stop) = l.drain(s).await? {
                            return Ok(stop);
                        }
                    }
                    _ = beat.tick() => s.heartbeat().await?,
                }
            }
        };
        let r = timeout_at(deadline, run)
            .await
            .unwrap_or(Ok(Stop::TimedOut));
        self.key = s.synckey.clone();
        r
    }

    async fn close(&mut self, mut s: Session) {
        // An unconfirmed page is offered again.
        let _ = timeout(Duration::from_secs(2), s.confirm()).await;
    }
}

/// Listens for messages until `opts.count` arrived, the sink says stop,
/// or `opts.deadline`; reconnects with backoff (100 ms doubling to 5 s)
/// when the connection fails. Before returning it confirms the last
/// handled page to the server. Fails only on a permanent refusal.
pub async fn listen<S: ListenSink>(
    config: &Config,
    opts: &ListenOptions,
    sink: &mut S,
) -> Result<ListenOutcome, ClientError> {
    let mut link = LongLink {
        config,
        key: SyncKey::default(),
    };
    listen_on(&mut link, opts, sink).await
}

/// [`listen`] over any [`Link`].
pub(in crate::net) async fn listen_on<L: Link, S: ListenSink>(
    link: &mut L,
    opts: &ListenOptions,
    sink: &mut S,
) -> Result<ListenOutcome, ClientError> {
    let mut l = Listener {
        sink,
        count: opts.count,
        received: 0,
        seen: HashSet::new(),
    };
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let deadline = opts.deadline.unwrap_or(far);
    let mut backoff = Duration::from_millis(100);
    let outcome = |l: &Listener<'_, S>, timed_out| ListenOutcome {
        received: l.received,
        timed_out,
    };
    loop {
        if l.done() {
            return Ok(outcome(&l, false));
        }
        let connected = match timeout_at(deadline, link.open()).await {
            Ok(r) => r,
            Err(_) => return Ok(outcome(&l, true)),
        };
        let err = match connected {
            Ok(mut s) => {
                backoff = Duration::from_millis(100);
                l.sink.connected();
                match link.run(&mut l, &mut s, deadline).await {
                    Ok(stop) => {
                        link.close(s).await;
                        return Ok(outcome(&l, matches!(stop, Stop::TimedOut)));
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if err.is_permanent() {
            return Err(err);
        }
        let delay = backoff.min(deadline.saturating_duration_since(Instant::now()));
        l.sink.reconnecting(&err, delay);
        sleep(delay).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
