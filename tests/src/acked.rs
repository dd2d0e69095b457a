//! Acknowledged inserts: clients that insert one row per transaction into
//! `acked (id bigint primary key, pad text)` and record every id whose
//! INSERT the server acknowledged, so that a test can check, after a crash
//! or a full disk, that every acknowledged commit is still there.
//!
//! [`AckLog::insert_until_error`] is one client, [`AckLog::start`] starts
//! several; [`AckLog::assert_present`] compares the table with what the
//! clients saw.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::Daemon;

/// The table the clients insert into.
pub const CREATE_TABLE: &str = "create table acked (id bigint primary key, pad text)";

/// What the clients saw, shared between them.
#[derive(Default)]
pub struct AckLog {
    acked: Mutex<Vec<i64>>,
    in_flight: Mutex<Vec<i64>>,
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

fn push<T>(v: &Mutex<Vec<T>>, x: T) {
    v.lock().unwrap_or_else(|p| p.into_inner()).push(x);
}

fn set_of(v: &Mutex<Vec<i64>>) -> BTreeSet<i64> {
    v.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect()
}

impl AckLog {
    pub fn new() -> Arc<AckLog> {
        Arc::new(AckLog::default())
    }

    /// Inserts ids `worker * 1e9 + n` with a pad of `pad_len` bytes, one per
    /// transaction, until an error or [`AckLog::stop`]; records every id
    /// whose INSERT returned success, the one in flight when it failed, and
    /// the error.
    pub async fn insert_until_error(self: Arc<Self>, url: String, worker: i64, pad_len: i32) {
        let (client, conn) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => return push(&self.errors, format!("worker {worker} connect: {e}")),
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let stmt = match client
            .prepare("insert into acked (id, pad) values ($1, repeat('p', $2))")
            .await
        {
            Ok(s) => s,
            Err(e) => return push(&self.errors, format!("worker {worker} prepare: {e}")),
        };
        let mut n = 0i64;
        while !self.stop.load(Ordering::Relaxed) {
            let id = worker * 1_000_000_000 + n;
            match client.execute(&stmt, &[&id, &pad_len]).await {
                Ok(1) => push(&self.acked, id),
                Ok(other) => panic!("insert of {id} reported {other} rows"),
                Err(e) => {
                    push(&self.in_flight, id);
                    return push(&self.errors, format!("worker {worker}: {e:?}"));
                }
            }
            n += 1;
        }
    }

    /// Starts `workers` clients (ids from worker 0 up) on a runtime of its
    /// own, which the caller keeps until the clients are done.
    pub fn start(
        self: &Arc<Self>,
        url: &str,
        workers: i64,
        pad_len: i32,
    ) -> (tokio::runtime::Runtime, Vec<tokio::task::JoinHandle<()>>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let tasks = (0..workers)
            .map(|w| rt.spawn(self.clone().insert_until_error(url.to_owned(), w, pad_len)))
            .collect();
        (rt, tasks)
    }

    /// Asks the clients to end after their current insert.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Ids acknowledged so far.
    pub fn acked(&self) -> BTreeSet<i64> {
        set_of(&self.acked)
    }

    /// The errors the clients stopped on.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Panics unless `branch`'s `acked` table holds every acknowledged id
    /// and nothing but those and the ids in flight at an error; `after`
    /// names the event for the message. Returns the ids present.
    pub fn assert_present(&self, d: &Daemon, branch: &str, after: &str) -> BTreeSet<i64> {
        let acked = self.acked();
        let in_flight = set_of(&self.in_flight);
        let present: BTreeSet<i64> = d
            .psql(branch, "select id from acked order by id")
            .lines()
            .map(|l| l.trim().parse::<i64>().expect("an id"))
            .collect();
        let lost: Vec<_> = acked.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged commits lost {after} (of {}), e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(10)]
        );
        let unexpected: Vec<_> = present
            .difference(&acked)
            .filter(|id| !in_flight.contains(id))
            .collect();
        assert!(
            unexpected.is_empty(),
            "rows nobody inserted: {unexpected:?}"
        );
        present
    }
}
