//! How offshoot itself logs in to a compute: as [`INTERNAL_ROLE`], with
//! its password, on the compute's private Unix socket, to `postgres`.

use std::path::Path;

use crate::config::SOCKET_PORT;
use crate::secrets::Secrets;
use crate::INTERNAL_ROLE;

/// The connection settings of offshoot's own session on the compute whose
/// socket is in `socket_dir`; `application` names it in `pg_stat_activity`.
pub(crate) fn config(
    socket_dir: &Path,
    secrets: &Secrets,
    application: &str,
) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(socket_dir)
        .port(SOCKET_PORT)
        .user(INTERNAL_ROLE)
        .password(&secrets.internal_password)
        .dbname("postgres")
        .application_name(application);
    cfg
}
