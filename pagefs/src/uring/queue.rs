//! One queue entry and the thread that serves it: registers its buffers
//! with the kernel, then answers each request and fetches the next in one
//! `io_uring_enter` (`COMMIT_AND_FETCH`).
//!
//! Reads, writes, `fsync` and `flush`, PostgreSQL's steady traffic, are
//! served here on `Core`'s own functions, the payload buffer serving as
//! the read buffer; everything else goes through `cold`.

use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use fuser::INodeNo;
use io_uring::{opcode, squeue, types, IoUring};

use super::abi::{self, HeaderBlock, IoArgs};
use super::cold::Cold;
use super::priority::{self, QueuePriority};
use crate::fs::PageFs;
use crate::MAX_REQUEST;

/// The payload buffer: the kernel wants room for its largest request
/// (`max_write`, `max_pages`), and a read answer fits in it too.
const PAYLOAD: usize = MAX_REQUEST as usize + 4096;

/// An SQE for `cmd` on queue `queue`, pointing at the entry's two buffers.
fn command_entry(
    fuse: RawFd,
    cmd: u32,
    queue: u16,
    commit_id: u64,
    iov: &[libc::iovec; 2],
) -> squeue::Entry128 {
    let mut entry = opcode::UringCmd80::new(types::Fd(fuse), cmd)
        .cmd(abi::command(queue, commit_id))
        .addr(Some(iov.as_ptr() as u64))
        .build();
    // The kernel reads the number of iovecs from the SQE's `len`, which
    // the opcode builder does not set.
    // SAFETY: `Entry128` is `#[repr(C)]` over the kernel's 128-byte SQE
    // (`struct io_uring_sqe` then 64 bytes of command), whose `len` is the
    // u32 at byte 24; the write stays inside the value.
    unsafe {
        std::ptr::from_mut(&mut entry)
            .cast::<u8>()
            .add(24)
            .cast::<u32>()
            .write_unaligned(2);
    }
    entry
}

/// Serves one entry of queue `queue` on the FUSE connection `fuse` until
/// the connection ends. `registered` hears once whether the kernel took
/// the entry.
pub(crate) fn serve(
    fuse: RawFd,
    queue: u16,
    fs: PageFs,
    cold: Arc<Cold>,
    priority: QueuePriority,
    registered: Sender<io::Result<bool>>,
) {
    let realtime = match priority::apply(priority) {
        Ok(realtime) => realtime,
        Err(err) => {
            tracing::debug!(queue, ?priority, %err, "queue thread keeps the scheduling class it was started with");
            false
        }
    };
    let mut ring = match IoUring::<squeue::Entry128>::builder()
        .setup_single_issuer()
        .build(4)
    {
        Ok(ring) => ring,
        Err(err) => {
            let _ = registered.send(Err(err));
            return;
        }
    };
    let mut block = HeaderBlock::zeroed();
    let mut payload = vec![0u8; PAYLOAD];
    // The kernel keeps these two addresses for the life of the entry: both
    // buffers live until this function returns, which it does only once
    // the kernel has ended the entry's command (an error completion).
    let iov = [
        libc::iovec {
            iov_base: block.0.as_mut_ptr().cast(),
            iov_len: abi::HEADER_BLOCK,
        },
        libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: PAYLOAD,
        },
    ];
    let register = command_entry(fuse, abi::CMD_REGISTER, queue, 0, &iov);
    // SAFETY: the SQE points at `iov` and its buffers, which outlive the
    // command (see above).
    let pushed = unsafe { ring.submission().push(&register) };
    if let Err(err) = pushed
        .map_err(|_| io::Error::other("submission queue full"))
        .and_then(|()| ring.submit().map(drop))
    {
        let _ = registered.send(Err(err));
        return;
    }
    // A refused registration completes at once; a taken one stays pending
    // until the first request.
    if let Some(cqe) = ring.completion().next() {
        let err = io::Error::from_raw_os_error(-cqe.result());
        let _ = registered.send(Err(err));
        return;
    }
    let _ = registered.send(Ok(realtime));
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                // The command may still be the kernel's: keep the buffers.
                tracing::error!(queue, %err, "io_uring_enter failed; leaking the entry's buffers");
                std::mem::forget(payload);
                std::mem::forget(block);
                return;
            }
        }
        let Some(cqe) = ring.completion().next() else {
            continue;
        };
        if cqe.result() < 0 {
            // The connection ended (unmount or abort).
            tracing::debug!(queue, err = %io::Error::from_raw_os_error(-cqe.result()), "queue entry ended");
            return;
        }
        let unique = block.unique();
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(&fs, &cold, &block, &mut payload)
        }));
        // A panic is answered EIO: the writer must not wait forever.
        let (error, body) = served.unwrap_or((-libc::EIO, 0));
        block.set_answer(unique, error, body);
        let commit = command_entry(
            fuse,
            abi::CMD_COMMIT_AND_FETCH,
            queue,
            block.commit_id(),
            &iov,
        );
        // SAFETY: as for the registration.
        if unsafe { ring.submission().push(&commit) }.is_err() {
            tracing::error!(queue, "submission queue full");
            return;
        }
    }
}

/// Serves the request in `block` and `payload`; returns the answer's
/// errno (0 or negative) and body length, the body in `payload`.
fn answer(fs: &PageFs, cold: &Cold, block: &HeaderBlock, payload: &mut [u8]) -> (i32, usize) {
    let ino = INodeNo(block.nodeid());
    match block.opcode() {
        abi::OP_WRITE => {
            let args = IoArgs::parse(block.op_in(abi::IO_ARGS));
            let len = block.payload_len().min(payload.len());
            match fs.write_at(ino, args.offset, &payload[..len], args.open_flags) {
                Ok(written) => {
                    // fuse_write_out: size, padding
                    payload[..4].copy_from_slice(&written.to_ne_bytes());
                    payload[4..8].fill(0);
                    (0, 8)
                }
                Err(errno) => (abi::negative(errno), 0),
            }
        }
        abi::OP_READ => {
            let args = IoArgs::parse(block.op_in(abi::IO_ARGS));
            let len = (args.size as usize).min(payload.len());
            match fs.read_into(ino, args.offset, &mut payload[..len]) {
                Ok(n) => (0, n),
                Err(errno) => (abi::negative(errno), 0),
            }
        }
        abi::OP_FSYNC => match fs.sync_branch("fsync") {
            Ok(()) => (0, 0),
            Err(errno) => (abi::negative(errno), 0),
        },
        // close() is not a durability point; fsync is.
        abi::OP_FLUSH => (0, 0),
        _ => cold.forward(block, payload),
    }
}
