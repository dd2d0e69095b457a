//! The readiness probe: a real login as [`INTERNAL_ROLE`] over the unix
//! socket, the same path a client takes (socket, SCRAM, backend start). A
//! missing socket or "the database system is starting up" means not yet;
//! any other refusal (wrong password, missing role) is final.

use std::path::Path;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::config::SOCKET_PORT;
use crate::secrets::Secrets;
use crate::INTERNAL_ROLE;

pub(super) enum Probe {
    Ready,
    NotYet,
    Rejected(String),
}

pub(super) async fn probe(socket_dir: &Path, secrets: &Secrets) -> Probe {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(socket_dir)
        .port(SOCKET_PORT)
        .user(INTERNAL_ROLE)
        .password(&secrets.internal_password)
        .dbname("postgres")
        .application_name("offshoot-probe")
        .connect_timeout(Duration::from_secs(2));
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
