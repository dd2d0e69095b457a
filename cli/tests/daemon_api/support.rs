//! Helpers shared by the daemon's in-process tests: options for a daemon on
//! a temporary home with OS-picked ports, an API client for it, a guard that
//! unmounts what a failed test left, and small SQL helpers.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::time::Duration;

use offshoot::daemon::{Daemon, UpOptions};
use offshoot::home::Home;

use crate::http::Api;

/// Unmounts whatever a failed test left under the home (PostgreSQL
/// processes die with the runtime: a dropped compute is killed).
pub struct MountGuard(pub std::path::PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = offshoot_pagefs::clean_stale_mounts(&self.0);
    }
}

/// A daemon on `home` with OS-picked ports and a 2 s idle timeout.
pub fn options(home: &Path) -> UpOptions {
    let mut opts = UpOptions::new(Home::at(home));
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.api_listen = "127.0.0.1:0".parse().unwrap();
    opts.idle_timeout = Duration::from_secs(2);
    opts
}

/// A client of the daemon's API with its bearer token.
pub fn api(daemon: &Daemon, home: &Path) -> Api {
    Api {
        addr: daemon.info().api_addr,
        token: Some(Home::at(home).api_token().unwrap()),
    }
}

pub async fn exec(uri: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"));
    let task = tokio::spawn(conn);
    if let Err(e) = client.batch_execute(sql).await {
        panic!("{sql}: {e:?}");
    }
    drop(client);
    let _ = task.await;
}

pub fn uri_of(api: &Api, branch: &str) -> String {
    let path = format!(
        "{}/connection-string",
        offshoot::api::types::branch_path(branch)
    );
    let r = api.get(&path);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["uri"].as_str().unwrap().to_string()
}
