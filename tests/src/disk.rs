//! Disk usage of a directory tree, counted in allocated blocks as `du` does.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes allocated to the files below `dir` (st_blocks × 512), not
/// following symlinks and not crossing into mounts.
pub fn du_bytes(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    fn walk(dir: &Path, dev: u64) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut total = 0;
        for e in entries.flatten() {
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.dev() != dev {
                continue;
            }
            total += md.blocks() * 512;
            if md.is_dir() {
                total += walk(&e.path(), dev);
            }
        }
        total
    }
    top.blocks() * 512 + walk(dir, top.dev())
}
