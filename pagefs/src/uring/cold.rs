//! The requests a queue thread does not serve itself (lookups, creates,
//! renames, directory listings, ...): passed, as the bytes `/dev/fuse`
//! would have carried, to a fuser session that reads them from a
//! `SOCK_SEQPACKET` socket, with `fs`'s operations behind it.
//!
//! fuser reads one request per `read` and writes one answer per `writev`,
//! which a sequenced-packet socket keeps whole. Answers come back in any
//! order (the session has several threads); a router thread hands each to
//! the queue thread waiting on its `unique`. The session is started with a
//! `FUSE_INIT` made from what the kernel offered the mount, so its
//! filesystem sees the same capabilities; its answer is dropped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fuser::{Config, InitFlags, Session, SessionACL};
use nix::sys::socket::{
    setsockopt, shutdown, socketpair, sockopt, AddressFamily, Shutdown, SockFlag, SockType,
};
use parking_lot::Mutex;

use super::abi::{HeaderBlock, IN_HEADER, OUT_HEADER};
use crate::fs::{Offered, PageFs};
use crate::MAX_REQUEST;

/// Threads of the session behind the socket: these requests are rare once
/// PostgreSQL runs, and each is answered from memory or one store call.
const THREADS: usize = 4;

/// A message on a sequenced-packet socket must fit the sender's buffer:
/// room for the largest request or answer (a directory listing can be as
/// large as a read).
const SOCKET_BUFFER: usize = MAX_REQUEST as usize + (64 << 10);

/// How long a queue thread waits for an answer before it answers EIO. These
/// requests are served from memory or one store call; a lost answer must
/// not hang the process that made the request.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// `FUSE_INIT`'s opcode and the `unique` its made-up request carries (odd:
/// the kernel's are even, so it never meets a forwarded one).
const OP_INIT: u32 = 26;
const INIT_UNIQUE: u64 = 1;
/// `FUSE_DESTROY`: a session thread that reads it answers and returns.
const OP_DESTROY: u32 = 38;
/// How long `stop` waits for the session's threads to take their
/// `FUSE_DESTROY` before it shuts the socket under them.
const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// The session behind the socket and the router of its answers.
pub(crate) struct Cold {
    socket: Arc<File>,
    waiting: Arc<Mutex<HashMap<u64, SyncSender<Vec<u8>>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Cold {
    /// Starts the session for `fs`, answering as the kernel's mount does
    /// (`acl`, the capabilities in `offered`).
    pub(crate) fn start(fs: PageFs, acl: SessionACL, offered: Offered) -> io::Result<Cold> {
        let (theirs, ours) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        for end in [theirs.as_fd(), ours.as_fd()] {
            // Past `net.core.wmem_max` only with CAP_NET_ADMIN; else as
            // large as the system allows.
            if setsockopt(&end, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
                let _ = setsockopt(&end, sockopt::SndBuf, &SOCKET_BUFFER);
            }
        }
        let mut socket = File::from(ours);
        // The handshake reads this as soon as the session is made.
        socket.write_all(&init_request(offered))?;
        let mut config = Config::default();
        config.n_threads = Some(THREADS);
        config.clone_fd = false;
        let session = Session::from_fd(fs, theirs, acl, config)?;
        let mut answer = vec![0u8; 4096];
        let n = socket.read(&mut answer)?;
        let error = (n >= OUT_HEADER)
            .then(|| i32::from_ne_bytes(answer[4..8].try_into().expect("4 bytes")));
        if error != Some(0) {
            return Err(io::Error::other(format!(
                "FUSE_INIT over the socket answered {error:?}"
            )));
        }
        let socket = Arc::new(socket);
        let waiting: Arc<Mutex<HashMap<u64, SyncSender<Vec<u8>>>>> = Arc::default();
        let serve = std::thread::Builder::new()
            .name("pagefs-cold".into())
            .spawn(move || {
                // It ends when every thread has read a FUSE_DESTROY (see
                // `stop`), or when the socket is shut down.
                if let Err(err) = session.run() {
                    tracing::debug!(%err, "socket session ended");
                }
            })?;
        let route = {
            let (socket, waiting) = (socket.clone(), waiting.clone());
            std::thread::Builder::new()
                .name("pagefs-route".into())
                .spawn(move || route(&socket, &waiting))?
        };
        Ok(Cold {
            socket,
            waiting,
            threads: vec![serve, route],
        })
    }

    /// Has the session answer the request in `block` and `payload`, and
    /// puts the answer in their place. Returns the answer's errno (0 or
    /// negative) and body length.
    pub(crate) fn forward(&self, block: &HeaderBlock, payload: &mut [u8]) -> (i32, usize) {
        let payload_len = block.payload_len().min(payload.len());
        let op_len = block.request_len().saturating_sub(IN_HEADER + payload_len);
        let mut request = Vec::with_capacity(IN_HEADER + op_len + payload_len);
        request.extend_from_slice(block.in_header());
        request.extend_from_slice(block.op_in(op_len));
        request.extend_from_slice(&payload[..payload_len]);
        let unique = block.unique();
        let (tx, rx) = sync_channel(1);
        self.waiting.lock().insert(unique, tx);
        if let Err(err) = (&*self.socket).write_all(&request) {
            self.waiting.lock().remove(&unique);
            tracing::error!(%err, opcode = block.opcode(), "passing a request to the socket session");
            return (-libc::EIO, 0);
        }
        let answer = match rx.recv_timeout(ANSWER_DEADLINE) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => {
                self.waiting.lock().remove(&unique);
                tracing::error!(opcode = block.opcode(), "no answer from the socket session");
                return (-libc::EIO, 0);
            }
            Err(RecvTimeoutError::Disconnected) => return (-libc::EIO, 0),
        };
        if answer.len() < OUT_HEADER {
            return (-libc::EIO, 0);
        }
        let error = i32::from_ne_bytes(answer[4..8].try_into().expect("4 bytes"));
        let body = &answer[OUT_HEADER..];
        if body.len() > payload.len() {
            tracing::error!(len = body.len(), "answer larger than the payload buffer");
            return (-libc::EIO, 0);
        }
        payload[..body.len()].copy_from_slice(body);
        (error, body.len())
    }

    /// Ends the session and the router, and waits for them. Each session
    /// thread is sent a `FUSE_DESTROY`, after which it returns quietly; an
    /// end of file would end it too, but fuser reports that as an invalid
    /// request, an error line per thread at every unmount.
    pub(crate) fn stop(self) {
        for n in 0..THREADS as u64 {
            if (&*self.socket).write_all(&destroy_request(n)).is_err() {
                break;
            }
        }
        let start = std::time::Instant::now();
        while !self.threads[0].is_finished() && start.elapsed() < STOP_DEADLINE {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Both);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Hands each answer on the socket to the thread waiting for it, until the
/// socket is shut down.
fn route(socket: &File, waiting: &Mutex<HashMap<u64, SyncSender<Vec<u8>>>>) {
    let mut buf = vec![0u8; MAX_REQUEST as usize + 4096];
    let mut socket = socket;
    loop {
        let n = match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::error!(%err, "reading the socket session's answers");
                break;
            }
        };
        if n < OUT_HEADER {
            continue;
        }
        let unique = u64::from_ne_bytes(buf[8..16].try_into().expect("8 bytes"));
        match waiting.lock().remove(&unique) {
            Some(tx) => {
                let _ = tx.send(buf[..n].to_vec());
            }
            None => tracing::debug!(unique, "answer nobody waits for"),
        }
    }
    // Whoever still waits gets EIO (their senders drop here).
    waiting.lock().clear();
}

/// A `FUSE_DESTROY` request (a header alone); `n` keeps the uniques apart.
fn destroy_request(n: u64) -> Vec<u8> {
    let mut request = Vec::with_capacity(IN_HEADER);
    request.extend_from_slice(&(IN_HEADER as u32).to_ne_bytes());
    request.extend_from_slice(&OP_DESTROY.to_ne_bytes());
    request.extend_from_slice(&(INIT_UNIQUE + 1 + n).to_ne_bytes());
    request.extend_from_slice(&[0u8; IN_HEADER - 16]); // nodeid, uid, gid, pid, padding
    request
}

/// The `FUSE_INIT` request the socket session starts with: the kernel's
/// protocol version and capabilities, as offered to the mount.
fn init_request(offered: Offered) -> Vec<u8> {
    let flags = (offered.capabilities | InitFlags::FUSE_INIT_EXT).bits();
    let mut request = Vec::with_capacity(IN_HEADER + 64);
    let len = (IN_HEADER + 64) as u32;
    request.extend_from_slice(&len.to_ne_bytes());
    request.extend_from_slice(&OP_INIT.to_ne_bytes());
    request.extend_from_slice(&INIT_UNIQUE.to_ne_bytes());
    request.extend_from_slice(&0u64.to_ne_bytes()); // nodeid
    request.extend_from_slice(&nix::unistd::geteuid().as_raw().to_ne_bytes());
    request.extend_from_slice(&nix::unistd::getegid().as_raw().to_ne_bytes());
    request.extend_from_slice(&std::process::id().to_ne_bytes());
    request.extend_from_slice(&[0u8; 4]); // total_extlen, padding
    for word in [
        offered.abi.0,
        offered.abi.1,
        MAX_REQUEST,
        flags as u32,
        (flags >> 32) as u32,
    ] {
        request.extend_from_slice(&word.to_ne_bytes());
    }
    request.extend_from_slice(&[0u8; 44]); // unused
    debug_assert_eq!(request.len(), IN_HEADER + 64);
    request
}
