//! The kernel's FUSE-over-io_uring interface (`include/uapi/linux/fuse.h`,
//! protocol 7.42 and later), as byte offsets into the buffers a queue entry
//! registers.
//!
//! Each entry registers two buffers: a 288-byte header block and a payload.
//! For a request the kernel writes its `fuse_in_header` at the start of the
//! header block, the operation's fixed-size argument (`fuse_write_in`, ...)
//! at `OP_IN`, and everything after it (names, write data) into the
//! payload; the trailer at `ENT_IN_OUT` carries the commit id and the
//! payload's length. An answer is a `fuse_out_header` at the start of the
//! header block, its body in the payload and the body's length in the
//! trailer. Laid end to end, header, argument and payload are the bytes
//! `/dev/fuse` would have carried, which is how `cold` forwards them.

use fuser::Errno;

/// Size of the header block (`struct fuse_uring_req_header`).
pub(crate) const HEADER_BLOCK: usize = 288;
/// Where the operation's own argument starts (`op_in`).
const OP_IN: usize = 128;
/// Where the trailer starts (`struct fuse_uring_ent_in_out`).
const ENT_IN_OUT: usize = 256;

/// `fuse_in_header` and `fuse_out_header`.
pub(crate) const IN_HEADER: usize = 40;
pub(crate) const OUT_HEADER: usize = 16;

/// Commands in an SQE's `cmd_op` (`enum fuse_uring_cmd`).
pub(crate) const CMD_REGISTER: u32 = 1;
pub(crate) const CMD_COMMIT_AND_FETCH: u32 = 2;

/// Operations served on the queue's own thread (`enum fuse_opcode`).
pub(crate) const OP_READ: u32 = 15;
pub(crate) const OP_WRITE: u32 = 16;
pub(crate) const OP_FSYNC: u32 = 20;
pub(crate) const OP_FLUSH: u32 = 25;

/// An entry's header block, aligned as the kernel's struct is.
#[repr(C, align(8))]
pub(crate) struct HeaderBlock(pub(crate) [u8; HEADER_BLOCK]);

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl HeaderBlock {
    pub(crate) fn zeroed() -> Box<HeaderBlock> {
        Box::new(HeaderBlock([0; HEADER_BLOCK]))
    }

    /// `fuse_in_header.len`: header, argument and payload together.
    pub(crate) fn request_len(&self) -> usize {
        u32_at(&self.0, 0) as usize
    }

    pub(crate) fn opcode(&self) -> u32 {
        u32_at(&self.0, 4)
    }

    pub(crate) fn unique(&self) -> u64 {
        u64_at(&self.0, 8)
    }

    pub(crate) fn nodeid(&self) -> u64 {
        u64_at(&self.0, 16)
    }

    /// The request's `fuse_in_header`.
    pub(crate) fn in_header(&self) -> &[u8] {
        &self.0[..IN_HEADER]
    }

    /// The operation's argument, `len` bytes of it.
    pub(crate) fn op_in(&self, len: usize) -> &[u8] {
        &self.0[OP_IN..OP_IN + len.min(ENT_IN_OUT - OP_IN)]
    }

    /// The id to commit the answer under.
    pub(crate) fn commit_id(&self) -> u64 {
        u64_at(&self.0, ENT_IN_OUT + 8)
    }

    /// Bytes of the request in the payload buffer.
    pub(crate) fn payload_len(&self) -> usize {
        u32_at(&self.0, ENT_IN_OUT + 16) as usize
    }

    /// Writes the answer's header: `error` is 0 or a negative errno, and
    /// `body` bytes of the payload buffer are the answer's body.
    pub(crate) fn set_answer(&mut self, unique: u64, error: i32, body: usize) {
        let len = (OUT_HEADER + body) as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[4..8].copy_from_slice(&error.to_ne_bytes());
        self.0[8..16].copy_from_slice(&unique.to_ne_bytes());
        self.0[ENT_IN_OUT + 16..ENT_IN_OUT + 20].copy_from_slice(&(body as u32).to_ne_bytes());
    }
}

/// `fuse_read_in` and `fuse_write_in` start alike: handle, offset, size.
/// `fuse_write_in` then has `write_flags`, `lock_owner` and the file's
/// open `flags` at byte 32.
pub(crate) struct IoArgs {
    pub(crate) offset: u64,
    pub(crate) size: u32,
    pub(crate) open_flags: i32,
}

impl IoArgs {
    pub(crate) fn parse(op_in: &[u8]) -> IoArgs {
        IoArgs {
            offset: u64_at(op_in, 8),
            size: u32_at(op_in, 16),
            open_flags: u32_at(op_in, 32) as i32,
        }
    }
}

/// `fuse_read_in` and `fuse_write_in` are 40 bytes.
pub(crate) const IO_ARGS: usize = 40;

/// The 80-byte command area of a register or commit SQE
/// (`struct fuse_uring_cmd_req`: flags, commit id, queue).
pub(crate) fn command(queue: u16, commit_id: u64) -> [u8; 80] {
    let mut cmd = [0u8; 80];
    cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    cmd[16..18].copy_from_slice(&queue.to_ne_bytes());
    cmd
}

/// An errno as the answer header carries it.
pub(crate) fn negative(errno: Errno) -> i32 {
    -errno.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_header_is_what_the_kernel_reads() {
        let mut block = HeaderBlock::zeroed();
        block.set_answer(0x1122_3344_5566_7788, -5, 8);
        assert_eq!(u32_at(&block.0, 0), 24);
        assert_eq!(u32_at(&block.0, 4) as i32, -5);
        assert_eq!(u64_at(&block.0, 8), 0x1122_3344_5566_7788);
        assert_eq!(u32_at(&block.0, 272), 8);
    }

    #[test]
    fn a_request_header_reads_back() {
        let mut block = HeaderBlock::zeroed();
        block.0[0..4].copy_from_slice(&8272u32.to_ne_bytes());
        block.0[4..8].copy_from_slice(&OP_WRITE.to_ne_bytes());
        block.0[8..16].copy_from_slice(&42u64.to_ne_bytes());
        block.0[16..24].copy_from_slice(&7u64.to_ne_bytes());
        block.0[128 + 8..128 + 16].copy_from_slice(&8192u64.to_ne_bytes());
        block.0[128 + 16..128 + 20].copy_from_slice(&8192u32.to_ne_bytes());
        block.0[128 + 32..128 + 36].copy_from_slice(&(libc::O_DSYNC as u32).to_ne_bytes());
        block.0[264..272].copy_from_slice(&42u64.to_ne_bytes());
        block.0[272..276].copy_from_slice(&8192u32.to_ne_bytes());
        assert_eq!(
            (
                block.request_len(),
                block.opcode(),
                block.unique(),
                block.nodeid()
            ),
            (8272, OP_WRITE, 42, 7)
        );
        assert_eq!((block.commit_id(), block.payload_len()), (42, 8192));
        let args = IoArgs::parse(block.op_in(IO_ARGS));
        assert_eq!(
            (args.offset, args.size, args.open_flags),
            (8192, 8192, libc::O_DSYNC)
        );
    }

    #[test]
    fn the_command_names_queue_and_commit() {
        let cmd = command(3, 99);
        assert_eq!(u64_at(&cmd, 0), 0);
        assert_eq!(u64_at(&cmd, 8), 99);
        assert_eq!(u16::from_ne_bytes([cmd[16], cmd[17]]), 3);
    }
}
