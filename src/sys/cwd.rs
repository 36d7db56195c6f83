//! The working directory and the file-creation mask: getcwd, chdir, umask.

use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;

use crate::error::SysError;
use crate::sys::file::quote_path;
use crate::trace::{Call, Recorder, RetFormat, Shown};

/// Corresponds to `getcwd(3)`, a syscall of its own on Linux: the absolute
/// path of the working directory. See <https://man7.org/linux/man-pages/man3/getcwd.3.html>.
///
/// # Errors
/// `ENOENT` (the directory was removed), `ERANGE`.
pub fn getcwd(rec: &mut Recorder) -> Result<PathBuf, SysError> {
    rec.call(Call::new("getcwd"), nix::unistd::getcwd, |r| {
        let (arg, ret) = match r {
            Ok(p) => (quote_path(p), p.as_os_str().len() as i64 + 1),
            Err(_) => ("0x…".to_string(), -1),
        };
        Shown::new(
            vec![arg, "4096".into()],
            ret,
            "the working directory, where relative paths start",
        )
    })
}

/// Corresponds to `chdir(2)`. See <https://man7.org/linux/man-pages/man2/chdir.2.html>.
///
/// # Errors
/// `ENOENT`, `ENOTDIR`, `EACCES`.
pub fn chdir(rec: &mut Recorder, path: &Path) -> Result<(), SysError> {
    rec.call(
        Call::new("chdir"),
        || nix::unistd::chdir(path),
        |_| Shown::new(vec![quote_path(path)], 0, "relative paths now start here"),
    )
}

/// Corresponds to `umask(2)`: sets the file-creation mask and returns the
/// old one (it cannot fail). Reading the mask means setting one, so the
/// caller sets it back. See <https://man7.org/linux/man-pages/man2/umask.2.html>.
pub fn umask(rec: &mut Recorder, mask: u32, note: &str) -> Result<u32, SysError> {
    rec.call(
        Call::new("umask"),
        || Ok(nix::sys::stat::umask(Mode::from_bits_truncate(mask)).bits()),
        |r| {
            let old = *r.as_ref().unwrap_or(&0);
            Shown::new(vec![format!("{mask:03o}")], i64::from(old), note)
                .ret_format(RetFormat::Octal)
        },
    )
}
