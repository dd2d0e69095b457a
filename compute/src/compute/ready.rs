//! Readiness: when to consider a starting postmaster ready.
//!
//! The signal is the log line `database system is ready to accept
//! connections`, read from the branch's log (our own file, never the data
//! directory, which may be the daemon's FUSE mount). PostgreSQL prints it
//! only once the startup process has finished (crash recovery included) and
//! the postmaster accepts connections, on the socket it opened before
//! recovery began; so a client's login right after it succeeds, and readiness
//! costs no login of its own (a SCRAM exchange and a backend fork, a few
//! milliseconds of the start). Messages are forced to English
//! (`lc_messages=C`) and to stderr at every start, so the line is always
//! there. The log is polled every [`POLL`], a small read from the last
//! offset.
//!
//! Fallback: if the line does not show up within [`LOG_GRACE`], a real
//! login as [`crate::INTERNAL_ROLE`] over the unix socket decides, tried again
//! after waits that grow from [`PROBE_EVERY`] to [`PROBE_EVERY_MAX`] (see
//! [`ProbeSchedule`]). A missing socket or "the database system is starting
//! up" means not yet; any other refusal (wrong password, missing role) is
//! final.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::internal_session;
use crate::secrets::Secrets;

/// How long to wait for the ready line before trying logins regardless.
pub(super) const LOG_GRACE: Duration = Duration::from_secs(2);
/// How often the log is read while waiting for the ready line.
pub(super) const POLL: Duration = Duration::from_millis(1);
/// Once [`LOG_GRACE`] is over, the wait before the second login; each
/// later wait is twice the one before, up to [`PROBE_EVERY_MAX`]. A login
/// that comes too early still costs the starting server a backend fork and
/// two lines in the branch's log (`FATAL:  the database system is not yet
/// accepting connections`), and a branch's first start can spend seconds in
/// crash recovery: tried at every [`POLL`], a recovery of 6.6 s forked some
/// 2,100 backends beside it and wrote 4,200 lines into the log.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The longest wait between two logins.
pub(super) const PROBE_EVERY_MAX: Duration = Duration::from_secs(1);
const READY_LINE: &[u8] = b"database system is ready to accept connections";

/// When the fallback login is due: first [`LOG_GRACE`] after the start,
/// then after waits of [`PROBE_EVERY`], twice that, and so on up to
/// [`PROBE_EVERY_MAX`]. The log is still read at every [`POLL`], so the
/// ready line is seen as soon as it is written.
pub(super) struct ProbeSchedule {
    next: Duration,
    wait: Duration,
}

impl ProbeSchedule {
    pub(super) fn new() -> ProbeSchedule {
        ProbeSchedule {
            next: LOG_GRACE,
            wait: PROBE_EVERY,
        }
    }

    /// Whether to try a login now, `elapsed` after the start; a yes sets
    /// the time of the next try.
    pub(super) fn due(&mut self, elapsed: Duration) -> bool {
        if elapsed < self.next {
            return false;
        }
        self.next = elapsed + self.wait;
        self.wait = (self.wait * 2).min(PROBE_EVERY_MAX);
        true
    }
}

pub(super) enum Probe {
    Ready,
    NotYet,
    Rejected(String),
}

/// Follows the log from the offset where this start began.
pub(super) struct ReadyLine {
    file: Option<File>,
    offset: u64,
    /// The end of what was read last time, in case the line straddles reads.
    carry: Vec<u8>,
    seen: bool,
}

impl ReadyLine {
    pub(super) fn new(log: &Path, offset: u64) -> ReadyLine {
        ReadyLine {
            file: File::open(log).ok(),
            offset,
            carry: Vec::new(),
            seen: false,
        }
    }

    /// True once the ready line has appeared in the log.
    pub(super) fn seen(&mut self) -> bool {
        if self.seen {
            return true;
        }
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        let mut buf = std::mem::take(&mut self.carry);
        let read = file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut buf));
        if let Ok(n) = read {
            self.offset += n as u64;
        }
        self.seen = buf.windows(READY_LINE.len()).any(|w| w == READY_LINE);
        let keep = buf.len().saturating_sub(READY_LINE.len());
        self.carry = buf.split_off(keep);
        self.seen
    }
}

pub(super) async fn probe(socket_dir: &Path, secrets: &Secrets) -> Probe {
    let mut cfg = internal_session::config(socket_dir, secrets, "offshoot-probe");
    cfg.connect_timeout(Duration::from_secs(2));
    match cfg.connect(NoTls).await {
        Ok((client, connection)) => {
            // Dropping the client makes the connection send Terminate and end.
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
            Probe::Ready
        }
        Err(e) => match e.as_db_error() {
            Some(db) if *db.code() == SqlState::CANNOT_CONNECT_NOW => Probe::NotYet,
            Some(db) => Probe::Rejected(format!("{} ({})", db.message(), db.code().code())),
            None => Probe::NotYet,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn ready_line_is_found_across_partial_writes_after_the_offset() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("branch.log");
        let old = "old run: database system is ready to accept connections\n";
        std::fs::write(&path, old).expect("write");
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        let mut ready = ReadyLine::new(&path, old.len() as u64);
        assert!(!ready.seen(), "a line from an earlier start must not count");
        log.write_all(b"LOG:  starting PostgreSQL\nLOG:  database system is re")
            .expect("write");
        assert!(!ready.seen());
        log.write_all(b"ady to accept connections\n")
            .expect("write");
        assert!(ready.seen());
    }

    #[test]
    fn logins_wait_for_the_grace_and_then_back_off() {
        let mut schedule = ProbeSchedule::new();
        let mut tries = Vec::new();
        // The wait loop asks at every POLL; 12 s of a slow recovery.
        let mut elapsed = Duration::ZERO;
        while elapsed < Duration::from_secs(12) {
            if schedule.due(elapsed) {
                tries.push(elapsed);
            }
            elapsed += POLL;
        }
        assert_eq!(tries.first(), Some(&LOG_GRACE), "first try at the grace");
        let gaps: Vec<Duration> = tries.windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(gaps.first(), Some(&PROBE_EVERY), "second try: {tries:?}");
        for pair in gaps.windows(2) {
            assert!(pair[1] >= pair[0], "waits shrank: {gaps:?}");
        }
        assert!(gaps.iter().all(|g| *g <= PROBE_EVERY_MAX), "{gaps:?}");
        assert_eq!(gaps.last(), Some(&PROBE_EVERY_MAX), "{gaps:?}");
        // At 2, 2.1, 2.3, 2.7 and 3.5 s, then one a second until 12 s: 13
        // tries, where every POLL was one before (10,000).
        assert_eq!(tries.len(), 13, "{tries:?}");
    }
}
