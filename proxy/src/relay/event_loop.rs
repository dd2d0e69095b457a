//! The relay's event loops: a few threads, each owning an epoll instance
//! and the sessions handed to it, moving bytes on readiness.
//!
//! Loops are started on first use and live as long as the process; an idle
//! loop sleeps in `epoll_wait`. A session goes to the loop with the fewest
//! open sessions, through a channel and the loop's waker.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;

use mio::{Events, Interest, Poll, Token, Waker};

use super::session::{Event, Progress, Session, Side};

/// Token of the loop's own waker; session tokens are `slot * 2 + side`.
const WAKER: Token = Token(usize::MAX);
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// Stack of a loop thread: a loop and heap-held sessions need little.
const STACK: usize = 256 * 1024;

/// A handle to one event loop thread.
struct LoopHandle {
    sender: mpsc::Sender<Session>,
    waker: Waker,
    open: Arc<AtomicUsize>,
}

/// The process's relay loops.
pub(super) struct Loops {
    loops: Vec<LoopHandle>,
}

impl Loops {
    /// The loops, started on first use: one per available core, at most
    /// four, since each loop can carry many sessions.
    pub(super) fn get() -> io::Result<&'static Loops> {
        static LOOPS: OnceLock<Loops> = OnceLock::new();
        // Sessions arriving together at first use start the loops once.
        static STARTING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
        if let Some(loops) = LOOPS.get() {
            return Ok(loops);
        }
        let _starting = STARTING.lock();
        if let Some(loops) = LOOPS.get() {
            return Ok(loops);
        }
        let count = loop_count();
        let loops = (0..count).map(start_loop).collect::<io::Result<Vec<_>>>()?;
        Ok(LOOPS.get_or_init(|| Loops { loops }))
    }

    /// Hands `session` to the least loaded loop.
    pub(super) fn submit(&self, session: Session) -> io::Result<()> {
        let target = self
            .loops
            .iter()
            .min_by_key(|l| l.open.load(Ordering::Relaxed))
            .expect("at least one relay loop");
        target.open.fetch_add(1, Ordering::Relaxed);
        target
            .sender
            .send(session)
            .map_err(|_| io::Error::other("relay loop has stopped"))?;
        target.waker.wake()
    }
}

fn loop_count() -> usize {
    if let Some(n) = std::env::var("OFFSHOOT_RELAY_LOOPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
}

fn start_loop(index: usize) -> io::Result<LoopHandle> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let (sender, receiver) = mpsc::channel();
    let open = Arc::new(AtomicUsize::new(0));
    let event_loop = EventLoop {
        poll,
        receiver,
        sessions: Slots::default(),
        open: open.clone(),
    };
    thread::Builder::new()
        .name(format!("relay-{index}"))
        .stack_size(STACK)
        .spawn(move || event_loop.run())?;
    Ok(LoopHandle {
        sender,
        waker,
        open,
    })
}

struct EventLoop {
    poll: Poll,
    receiver: mpsc::Receiver<Session>,
    sessions: Slots,
    open: Arc<AtomicUsize>,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "relay loop cannot poll; its sessions end");
                return;
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    self.accept_new();
                    continue;
                }
                let (slot, side) = decode(event.token());
                let seen = Event {
                    readable: event.is_readable(),
                    writable: event.is_writable() || event.is_write_closed() || event.is_error(),
                    read_closed: event.is_read_closed() || event.is_error(),
                };
                let Some(session) = self.sessions.get_mut(slot) else {
                    continue;
                };
                if session.on_event(side, seen) == Progress::Ended {
                    self.remove(slot);
                }
            }
        }
    }

    /// Registers the sessions handed over since the last wake-up and moves
    /// whatever bytes already wait in them.
    fn accept_new(&mut self) {
        while let Ok(mut session) = self.receiver.try_recv() {
            let slot = self.sessions.free_slot();
            let registry = self.poll.registry();
            let both = Interest::READABLE | Interest::WRITABLE;
            let registered = registry
                .register(&mut session.client, encode(slot, Side::Client), both)
                .and_then(|()| {
                    registry.register(&mut session.server, encode(slot, Side::Server), both)
                });
            if let Err(e) = registered {
                self.sessions.free.push(slot);
                session.finish(Err(e));
                self.open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            self.sessions.put(slot, session);
            let progress = self.sessions.get_mut(slot).map(Session::pump);
            if progress == Some(Progress::Ended) {
                self.remove(slot);
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(mut session) = self.sessions.take(slot) {
            let registry = self.poll.registry();
            let _ = registry.deregister(&mut session.client);
            let _ = registry.deregister(&mut session.server);
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn encode(slot: usize, side: Side) -> Token {
    Token(slot * 2 + usize::from(side == Side::Server))
}

fn decode(token: Token) -> (usize, Side) {
    let side = if token.0 % 2 == 1 {
        Side::Server
    } else {
        Side::Client
    };
    (token.0 / 2, side)
}

/// Sessions by slot, reusing freed slots.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Session>>,
    free: Vec<usize>,
}

impl Slots {
    fn free_slot(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        })
    }

    fn put(&mut self, slot: usize, session: Session) {
        self.slots[slot] = Some(session);
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Session> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    fn take(&mut self, slot: usize) -> Option<Session> {
        let session = self.slots.get_mut(slot)?.take();
        if session.is_some() {
            self.free.push(slot);
        }
        session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for slot in [0, 1, 7, 1 << 20] {
            for side in [Side::Client, Side::Server] {
                assert_eq!(decode(encode(slot, side)), (slot, side));
            }
        }
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut slots = Slots::default();
        let a = slots.free_slot();
        slots.slots[a] = None;
        let b = slots.free_slot();
        assert_ne!(a, b);
        slots.free.push(a);
        assert_eq!(slots.free_slot(), a);
    }
}
