//! Counters the daemon reads (and exports on `/metrics`): plain atomics, no
//! metrics crate. `active` goes up on accept and down when the connection task
//! ends; `failed` counts connections the proxy itself refused, by reason.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why the proxy refused or dropped a connection before the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// Malformed or unsupported startup traffic.
    Protocol,
    /// The startup phase took too long.
    StartupTimeout,
    /// TLS handshake failed.
    Tls,
    /// No branch was named, or two sources disagreed.
    NoBranch,
    /// The branch name breaks the naming rule.
    InvalidBranch,
    /// No such branch (or being deleted).
    UnknownBranch,
    /// A reserved role or no role.
    Auth,
    /// The compute could not be woken or reached.
    ComputeUnavailable,
    /// Anything else (logged).
    Internal,
    /// The client went away during the startup phase.
    ClientGone,
}

impl FailReason {
    /// Every reason, in a stable order (index into the counters).
    pub const ALL: [FailReason; 10] = [
        FailReason::Protocol,
        FailReason::StartupTimeout,
        FailReason::Tls,
        FailReason::NoBranch,
        FailReason::InvalidBranch,
        FailReason::UnknownBranch,
        FailReason::Auth,
        FailReason::ComputeUnavailable,
        FailReason::Internal,
        FailReason::ClientGone,
    ];

    /// A short label, e.g. for a Prometheus `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Protocol => "protocol",
            FailReason::StartupTimeout => "startup_timeout",
            FailReason::Tls => "tls",
            FailReason::NoBranch => "no_branch",
            FailReason::InvalidBranch => "invalid_branch",
            FailReason::UnknownBranch => "unknown_branch",
            FailReason::Auth => "auth",
            FailReason::ComputeUnavailable => "compute_unavailable",
            FailReason::Internal => "internal",
            FailReason::ClientGone => "client_gone",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Live counters, shared between `serve` and whoever reads them.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    accepted: AtomicU64,
    active: AtomicU64,
    relayed: AtomicU64,
    handed_off: AtomicU64,
    cancel_forwarded: AtomicU64,
    cancel_unmatched: AtomicU64,
    failed: [AtomicU64; FailReason::ALL.len()],
}

/// A point-in-time copy of [`ProxyMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// TCP connections accepted.
    pub accepted: u64,
    /// Connection tasks still running.
    pub active: u64,
    /// Connections that reached a compute.
    pub relayed: u64,
    /// Of those, sessions whose client socket was handed to the backend
    /// after authentication (no relay).
    pub handed_off: u64,
    /// CancelRequests passed on to a compute.
    pub cancel_forwarded: u64,
    /// CancelRequests whose key no live connection owned (dropped silently).
    pub cancel_unmatched: u64,
    /// Refused connections, by reason (every reason present, in `FailReason::ALL` order).
    pub failed: Vec<(FailReason, u64)>,
}

impl MetricsSnapshot {
    /// The count for one reason.
    pub fn failed(&self, reason: FailReason) -> u64 {
        self.failed
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

impl ProxyMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            relayed: self.relayed.load(Ordering::Relaxed),
            handed_off: self.handed_off.load(Ordering::Relaxed),
            cancel_forwarded: self.cancel_forwarded.load(Ordering::Relaxed),
            cancel_unmatched: self.cancel_unmatched.load(Ordering::Relaxed),
            failed: FailReason::ALL
                .iter()
                .map(|r| (*r, self.failed[r.index()].load(Ordering::Relaxed)))
                .collect(),
        }
    }

    pub(crate) fn connection_opened(&self) -> ActiveGuard<'_> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self)
    }

    pub(crate) fn relayed(&self) {
        self.relayed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handed_off(&self) {
        self.handed_off.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, reason: FailReason) {
        self.failed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cancel(&self, matched: bool) {
        let counter = if matched {
            &self.cancel_forwarded
        } else {
            &self.cancel_unmatched
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Decrements `active` when the connection task ends, however it ends.
pub(crate) struct ActiveGuard<'a>(&'a ProxyMetrics);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
