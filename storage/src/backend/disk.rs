//! The real-disk backend: one directory, positional I/O, `fdatasync`, mmap.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Backend, BackendFile, Mapping};

/// Files in one directory of the local filesystem.
#[derive(Debug)]
pub struct DiskBackend {
    dir: PathBuf,
}

impl DiskBackend {
    /// Uses `dir`, creating it if missing.
    pub fn new(dir: &Path) -> io::Result<DiskBackend> {
        std::fs::create_dir_all(dir)?;
        Ok(DiskBackend {
            dir: dir.to_path_buf(),
        })
    }
}

impl Backend for DiskBackend {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn BackendFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(self.dir.join(name))?;
        Ok(Arc::new(DiskFile { file }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

struct DiskFile {
    file: File,
}

impl BackendFile for DiskFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn release_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: `posix_fadvise` only reads its arguments; the descriptor
        // is owned by `self.file` and open for the whole call.
        let rc = unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        match rc {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: `sync_file_range` only reads its arguments; the descriptor
        // is owned by `self.file` and open for the whole call.
        let rc = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    fn map(&self) -> io::Result<Mapping> {
        if self.len()? == 0 {
            return Ok(Box::new(Vec::new()));
        }
        // SAFETY: the store maps only sealed layer files, which it never
        // writes, truncates or removes while a mapping is alive (see
        // docs/storage-format.md, "Invariants"); no other process writes
        // the store directory.
        let map = unsafe { memmap2::Mmap::map(&self.file)? };
        Ok(Box::new(map))
    }
}
