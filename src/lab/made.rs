//! Paths a run creates (a FIFO, a temp directory, a socket file, a
//! /dev/shm name) and removes again — only if they are still what it made.

use std::path::{Path, PathBuf};

use crate::error::{Result, SysError};
use crate::sys::file;
use crate::trace::Recorder;

/// A path this run created, with the identity (device, inode) it had then:
/// at cleanup it is removed only if it is still that object.
#[derive(Debug, Clone)]
pub struct Made {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// `st_mode` when it was made: type and permission bits.
    pub mode: u32,
}

impl Made {
    /// Records what `lstat` says sits at `path` now (just made by this run).
    pub fn look(rec: &mut Recorder, path: &Path, what: &str) -> Result<Made> {
        rec.note(format!(
            "ipclab remembers which {what} it made (device and inode): at the end it removes that one, and nothing else"
        ));
        let st = file::lstat(rec, path)?;
        Ok(Made {
            path: path.to_path_buf(),
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
        })
    }

    /// Makes a fresh private directory under $TMPDIR (mode 0700, so only
    /// this user can enter it) and records it.
    pub fn private_dir(rec: &mut Recorder) -> Result<Made> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("ipclab-{}-{nanos:08x}", std::process::id()));
        file::mkdir(rec, &dir, 0o700)?;
        Made::look(rec, &dir, "directory")
    }

    /// Removes the path if it is still what this run made (`rmdir` for a
    /// directory, `unlink` otherwise, with `note`); else says what is there
    /// and leaves it.
    pub fn remove(self, rec: &mut Recorder, dir: bool, note: &str) {
        self.remove_with(rec, note, |rec, path| {
            if dir {
                file::rmdir(rec, path)
            } else {
                file::unlink(rec, path)
            }
        });
    }

    /// As [`remove`](Self::remove), with the call that removes it given
    /// (`shm_unlink` for a shared-memory object, say).
    pub fn remove_with(
        self,
        rec: &mut Recorder,
        note: &str,
        remove: impl FnOnce(&mut Recorder, &Path) -> Result<(), SysError>,
    ) {
        let shown = crate::trace::names::printable(self.path.as_os_str().as_encoded_bytes());
        rec.note(
            "same device and inode as when ipclab made it: still ipclab's own, so it may go \
             (a check, then the removal: someone with write access to the directory could still swap it in between)",
        );
        match file::lstat(rec, &self.path) {
            Ok(st) if st.st_dev == self.dev && st.st_ino == self.ino => {
                rec.note(note);
                let _ = remove(rec, &self.path);
            }
            Ok(st) => rec.message(format!(
                "{shown} is now {} (inode {}) that ipclab did not make: left in place. \
                 What ipclab made there (inode {}) was moved or removed by someone else",
                file::kind_text(st.st_mode),
                st.st_ino,
                self.ino
            )),
            Err(_) => rec.message(format!(
                "{shown} is gone already: someone else removed or renamed it; nothing to clean up"
            )),
        }
    }
}
