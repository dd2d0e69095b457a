//! A checkpoint asked of a running compute before its branch is copied.
//!
//! A branch taken from a running parent is a crash image: its first start
//! replays the parent's WAL from the parent's last checkpoint. After a bulk
//! load or a large migration that can be most of a gigabyte of WAL, and the
//! new branch's first query then waits for the replay and for recovery's
//! own checkpoint (18.2 s after `pgbench -i -s 68`; 0.30 s from the create
//! to the first answer when the parent is checkpointed first:
//! docs/compute.md, "A branch of a busy parent").
//! So a create that asks for it (`branch create --checkpoint-parent`) has
//! the daemon ask the parent for a `CHECKPOINT` first, when more than a
//! threshold of WAL was written since its last one; below it the copy goes
//! ahead at once and the replay is short.
//!
//! The session is offshoot's own (`internal_session`), like the readiness
//! probe's.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::error::ComputeError;
use crate::internal_session;
use crate::secrets::Secrets;

/// What [`checkpoint_if_behind`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// WAL written since the redo point of the compute's last checkpoint,
    /// in bytes, before this call.
    pub wal_since_checkpoint: u64,
    /// How long the checkpoint took; `None` when none was needed.
    pub took: Option<Duration>,
}

/// Asks the compute listening in `socket_dir` for a checkpoint when more
/// than `min_wal_bytes` of WAL was written since its last one. `timeout`
/// bounds the whole call (connecting, the WAL query and the checkpoint).
pub async fn checkpoint_if_behind(
    name: &str,
    socket_dir: &Path,
    secrets: &Secrets,
    min_wal_bytes: u64,
    timeout: Duration,
) -> Result<CheckpointOutcome, ComputeError> {
    let failed = |reason: String| ComputeError::Checkpoint {
        name: name.to_string(),
        reason,
    };
    let work = async {
        let (client, connection) =
            internal_session::config(socket_dir, secrets, "offshoot-checkpoint")
                .connect(NoTls)
                .await
                .map_err(|e| failed(format!("connect: {e}")))?;
        let session = tokio::spawn(connection);
        let row = client
            .query_one(WAL_SINCE_CHECKPOINT, &[])
            .await
            .map_err(|e| failed(format!("read the WAL position: {e}")))?;
        let wal_since_checkpoint = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        let mut took = None;
        if wal_since_checkpoint > min_wal_bytes {
            let started = Instant::now();
            client
                .batch_execute("CHECKPOINT")
                .await
                .map_err(|e| failed(format!("CHECKPOINT: {e}")))?;
            took = Some(started.elapsed());
        }
        drop(client);
        let _ = session.await;
        Ok(CheckpointOutcome {
            wal_since_checkpoint,
            took,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(failed(format!("no answer within {timeout:?}"))))
}

/// Bytes of WAL inserted since the redo point of the last checkpoint.
const WAL_SINCE_CHECKPOINT: &str =
    "SELECT greatest(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), redo_lsn), 0)::bigint \
     FROM pg_control_checkpoint()";
