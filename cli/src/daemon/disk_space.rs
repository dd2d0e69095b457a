//! Free space on the disk under the page store: measured for
//! `GET /v1/status` and `/metrics`, watched by a background loop that warns
//! in the log while it is low, and consulted by the proxy's router when a
//! compute fails to start (below [`FULL_BYTES`] the client is told the disk
//! is full). The page store keeps every page
//! version it is given (no compaction yet), so a busy branch can fill a disk
//! in minutes, and a branch whose WAL write finds no room stops (see
//! docs/daemon.md, "A full disk").

use std::path::Path;
use std::time::{Duration, Instant};

/// Below this many free bytes the disk counts as full: a compute that
/// fails to start is then reported to its client as failing for want of
/// room (SQLSTATE 53100, `disk_full`).
pub const FULL_BYTES: u64 = 64 << 20;
/// Below this many free bytes the daemon warns.
pub const LOW_BYTES: u64 = 1 << 30;
/// Space counts as recovered only this far above [`LOW_BYTES`], so that a
/// disk hovering at the threshold does not warn and recover every period.
pub const RECOVERED_BYTES: u64 = LOW_BYTES + (256 << 20);
/// While space stays low, the warning repeats this often.
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// How often the watch measures.
pub const PERIOD: Duration = Duration::from_secs(5);

/// Bytes the daemon can still write on the filesystem of `dir`: as root it
/// may use the blocks the filesystem reserves for root, otherwise not.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let blocks = if nix::unistd::geteuid().is_root() {
        st.blocks_free()
    } else {
        st.blocks_available()
    };
    Ok((blocks as u64).saturating_mul(st.fragment_size() as u64))
}

/// What a measurement calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// Space just fell below [`LOW_BYTES`].
    Low,
    /// Still low, [`REPEAT_EVERY`] after the last warning.
    StillLow,
    /// Back above [`RECOVERED_BYTES`] after a warning.
    Recovered,
}

/// Turns successive measurements into warnings: one when space falls low,
/// a reminder every [`REPEAT_EVERY`] while it stays low, one when it is back.
#[derive(Debug, Default)]
pub struct LowSpaceWatch {
    /// When the last warning went out; `None` while space is not low.
    last_warned: Option<Instant>,
}

impl LowSpaceWatch {
    pub fn observe(&mut self, free: u64, now: Instant) -> Option<Alert> {
        match self.last_warned {
            None if free < LOW_BYTES => {
                self.last_warned = Some(now);
                Some(Alert::Low)
            }
            None => None,
            Some(_) if free >= RECOVERED_BYTES => {
                self.last_warned = None;
                Some(Alert::Recovered)
            }
            Some(t) if now.saturating_duration_since(t) >= REPEAT_EVERY => {
                self.last_warned = Some(now);
                Some(Alert::StillLow)
            }
            Some(_) => None,
        }
    }
}

/// Measures `dir` once and logs what the measurement calls for.
pub fn check(watch: &mut LowSpaceWatch, dir: &Path) {
    let free = match free_bytes(dir) {
        Ok(free) => free,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot measure free space");
            return;
        }
    };
    let free_mib = free >> 20;
    match watch.observe(free, Instant::now()) {
        Some(Alert::Low | Alert::StillLow) => tracing::warn!(
            dir = %dir.display(),
            free_mib,
            "the disk under the page store is nearly full: when it fills, a branch \
             whose WAL write finds no room stops (PostgreSQL PANICs) until there is \
             room again. Free space on that disk, or delete branches you no longer need"
        ),
        Some(Alert::Recovered) => tracing::info!(
            dir = %dir.display(),
            free_mib,
            "the disk under the page store has room again"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn warns_once_on_falling_low_then_reminds_then_recovers() {
        let mut w = LowSpaceWatch::default();
        let t0 = Instant::now();
        assert_eq!(w.observe(5 * GIB, t0), None);
        assert_eq!(w.observe(LOW_BYTES - 1, t0), Some(Alert::Low));
        assert_eq!(w.observe(0, t0 + PERIOD), None, "no repeat within a minute");
        assert_eq!(
            w.observe(0, t0 + REPEAT_EVERY),
            Some(Alert::StillLow),
            "a reminder a minute later"
        );
        assert_eq!(w.observe(0, t0 + REPEAT_EVERY + PERIOD), None);
        assert_eq!(
            w.observe(RECOVERED_BYTES, t0 + 2 * REPEAT_EVERY),
            Some(Alert::Recovered)
        );
        assert_eq!(w.observe(5 * GIB, t0 + 3 * REPEAT_EVERY), None);
    }

    #[test]
    fn hovering_at_the_threshold_does_not_flap() {
        let mut w = LowSpaceWatch::default();
        let t0 = Instant::now();
        assert_eq!(w.observe(LOW_BYTES - 1, t0), Some(Alert::Low));
        assert_eq!(w.observe(LOW_BYTES + 1, t0 + PERIOD), None);
        assert_eq!(w.observe(LOW_BYTES - 1, t0 + 2 * PERIOD), None);
        assert_eq!(w.observe(RECOVERED_BYTES - 1, t0 + 3 * PERIOD), None);
    }

    #[test]
    fn measures_a_real_filesystem() {
        let dir = std::env::temp_dir();
        let free = free_bytes(&dir).expect("statvfs of the temp dir");
        let st = nix::sys::statvfs::statvfs(&dir).expect("statvfs");
        let total = st.blocks() as u64 * st.fragment_size() as u64;
        assert!(free <= total, "free {free} > size {total}");
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
    }
}
