//! Advisory file locks between berth processes sharing a store.
//!
//! `refs.lock` serialises updates of `index.json`. `gc.lock` is held shared by
//! every process that may write blobs (from its first blob until its ref is
//! recorded) and exclusively by garbage collection, so GC never removes a blob
//! that a running operation has written but not yet referenced.

use crate::error::{IoContext, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;

pub(crate) struct FileLock {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .ctx(|| format!("cannot open lock file {}", path.display()))
}

impl FileLock {
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        let file = open(path)?;
        file.lock()
            .ctx(|| format!("cannot lock {}", path.display()))?;
        Ok(FileLock { _file: file })
    }

    /// The exclusive lock if nobody holds the file, else `None`.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).ctx(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    pub fn shared(path: &Path) -> Result<FileLock> {
        let file = open(path)?;
        file.lock_shared()
            .ctx(|| format!("cannot lock {}", path.display()))?;
        Ok(FileLock { _file: file })
    }
}
