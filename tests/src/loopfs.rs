//! [`LoopFs`]: a small ext4 filesystem in a sparse image file, mounted
//! through a loop device, for tests that need a disk that fills up.
//!
//! Needs root and the usual system tools (`mkfs.ext4` from e2fsprogs;
//! `mount`, `umount` from util-linux). Dropping a
//! `LoopFs` lazily unmounts it (the loop device goes with the mount) and
//! deletes the image, unless `OFFSHOOT_E2E_KEEP` is set (mount the image to
//! read the home that was on it).

use crate::exec::{self, CmdOutput};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// A mounted ext4 image. See the module doc.
pub struct LoopFs {
    image: PathBuf,
    mountpoint: PathBuf,
    mounted: bool,
}

fn run_ok(program: &str, args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = exec::run(cmd, TOOL_TIMEOUT);
    assert!(
        out.success(),
        "{program} {args:?} failed: {}{}",
        out.stdout,
        out.stderr
    );
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

impl LoopFs {
    /// Creates an ext4 filesystem of `bytes` in `image` and mounts it on
    /// `mountpoint` (an existing, empty directory). The filesystem's
    /// `lost+found` is removed, so the mount starts empty.
    pub fn create(image: &Path, bytes: u64, mountpoint: &Path) -> LoopFs {
        assert!(
            Path::new("/dev/loop-control").exists(),
            "no loop devices on this machine (/dev/loop-control): load the driver with `modprobe loop`"
        );
        let file = std::fs::File::create(image).expect("create the image file");
        file.set_len(bytes).expect("size the image file");
        drop(file);
        run_ok("mkfs.ext4", &["-q", "-F", path_str(image)]);
        let mut fs = LoopFs {
            image: image.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            mounted: false,
        };
        fs.mount();
        let _ = std::fs::remove_dir(mountpoint.join("lost+found"));
        fs
    }

    fn mount(&mut self) {
        run_ok(
            "mount",
            &[
                "-o",
                "loop",
                path_str(&self.image),
                path_str(&self.mountpoint),
            ],
        );
        self.mounted = true;
    }

    /// Bytes free for an unprivileged writer (statvfs `f_bavail`).
    pub fn available_bytes(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.mountpoint).expect("statvfs of the mount");
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .output();
        }
        if std::env::var_os("OFFSHOOT_E2E_KEEP").is_some() {
            eprintln!("kept the filesystem image {}", self.image.display());
        } else {
            let _ = std::fs::remove_file(&self.image);
        }
    }
}
