//! The scheduling class of the io_uring queue threads.
//!
//! A commit on a branch waits for a queue thread twice: to be woken for the
//! `WRITE` of its WAL, and to run again once the store's flush of that
//! write has completed. Under a write load both CPUs of a small machine are
//! busy with PostgreSQL's backends and pgbench, and at normal priority a
//! woken queue thread waited 68 µs and 168 µs on average (its two queues)
//! for a CPU (`perf sched latency`), while PostgreSQL's WAL write took
//! 0.28–0.31 ms. As the lowest real-time priority (`SCHED_FIFO` 1) it runs
//! as soon as it is woken, and the WAL write fell to 0.18–0.19 ms in the
//! pagefs harness; `offshoot bench`'s TPC-B throughput did not move beyond
//! its spread (see docs/benchmarks.md, "Queue threads at real-time
//! priority").
//!
//! Why the threads should not starve PostgreSQL (an argument, not a
//! measurement of its own): they only ever serve requests that PostgreSQL
//! (or the kernel's writeback of its pages) made, and block in
//! `io_uring_enter` when there are none; the kernel's real-time throttling
//! (`sched_rt_runtime_us`) bounds them besides. What was measured is that
//! none of the six bench runs at 1 GiB on this change (TPC-B 89.0, 85.1,
//! 85.7, 85.5, 89.8, 84.7% of native) fell below the spread of the runs
//! before it (83.6–91.4%).
//!
//! The class is set with `SCHED_RESET_ON_FORK`: a thread that a queue
//! thread starts runs at normal priority. The page store starts one from the
//! flush that comes near its open log's zeroed end (the zero-fill: 4 MiB of
//! zeros and a flush), and at real-time priority that thread would take a
//! CPU from PostgreSQL's backends for work nobody waits on. (The bench runs
//! up to bench-s1 of 5 December, night, had it inherit the class.) Only a
//! process with `CAP_SYS_NICE` (the daemon as root) may ask; without it the
//! threads stay at normal priority and the mount works as before.

use std::io;

/// How the queue threads of a mount are scheduled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueuePriority {
    /// `SCHED_FIFO` at priority 1 where allowed, else normal.
    #[default]
    RealTime,
    /// The normal time-sharing class (`SCHED_OTHER`), like any thread.
    Normal,
}

impl QueuePriority {
    /// As the environment variable `var` asks: `normal` for
    /// [`QueuePriority::Normal`]; unset or any other value, the default.
    pub fn from_env(var: &str) -> QueuePriority {
        match std::env::var_os(var) {
            Some(v) if v == "normal" => QueuePriority::Normal,
            _ => QueuePriority::RealTime,
        }
    }
}

/// Applies `priority` to the calling thread. `Ok(true)`: it now runs at
/// real-time priority.
pub(crate) fn apply(priority: QueuePriority) -> io::Result<bool> {
    match priority {
        // Set, not assumed: a thread inherits its class from the thread
        // that started it, and a mount may be made from a real-time thread.
        QueuePriority::Normal => set_class(libc::SCHED_OTHER, 0).map(|()| false),
        QueuePriority::RealTime => {
            set_class(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, 1).map(|()| true)
        }
    }
}

/// Puts the calling thread in scheduling class `policy` at `priority`.
fn set_class(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `sched_setscheduler` reads `param`, which lives for the
    // call; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's scheduling class, without the reset-on-fork flag.
    fn class() -> libc::c_int {
        // SAFETY: plain system call; pid 0 is the calling thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        assert!(policy >= 0, "{}", io::Error::last_os_error());
        policy & !libc::SCHED_RESET_ON_FORK
    }

    #[test]
    fn threads_started_by_a_real_time_thread_run_at_normal_priority() {
        let (own, started) = std::thread::spawn(|| {
            let realtime = apply(QueuePriority::RealTime).unwrap_or(false);
            if !realtime {
                return None;
            }
            let started = std::thread::spawn(class).join().expect("child thread");
            Some((class(), started))
        })
        .join()
        .expect("real-time thread")
        .expect("no real-time priority for this test (it needs CAP_SYS_NICE, tests run as root)");
        assert_eq!(own, libc::SCHED_FIFO);
        assert_eq!(
            started,
            libc::SCHED_OTHER,
            "a started thread inherited real time"
        );
    }
}
