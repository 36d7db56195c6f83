//! Named pipes: mkfifo (mknodat) → open, which blocks until both ends are
//! open → write / read → EOF → unlink.
//!
//! Where the notes are wrong: they call a named pipe full-duplex and usable
//! across machines. On Linux a FIFO carries one byte stream (with several
//! writers, their bytes mix in one stream; two-way talk needs two FIFOs) and
//! exists only in one machine's kernel: its file-system name is a rendezvous
//! point, not a network address. Full-duplex, networked named pipes are a
//! Windows feature (`\\server\pipe\name`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::WaitStatus;

use crate::error::{Error, Result};
use crate::lab::child_exit;
use crate::lab::wait;
use crate::lab::Made;
use crate::sys::file;
use crate::sys::process::{self, Forked};
use crate::sys::signal;
use crate::trace::names::printable;
use crate::trace::Recorder;

use crate::lab::MAX_MESSAGE;

/// The note shown with every FIFO run: what the seed's notes get wrong.
pub const ERRATUM: &str = "erratum to the notes: a Linux FIFO is one byte stream on one machine — \
not full-duplex (two-way talk needs two FIFOs) and not usable across machines; \
full-duplex, networked named pipes are a Windows feature";

/// What `ipclab fifo` does.
#[derive(Debug, Clone)]
pub enum FifoConfig {
    /// Both ends in one command (fork); `path` None means a fresh temp dir.
    Demo {
        path: Option<PathBuf>,
        message: Vec<u8>,
    },
    /// One end, for two terminals.
    Read {
        path: PathBuf,
    },
    Write {
        path: PathBuf,
        message: Vec<u8>,
    },
}

/// Checks a message given on the command line (see [`crate::lab::check_message`]).
pub fn check_message(msg: &str) -> Result<Vec<u8>> {
    crate::lab::check_message("the message", msg)
}

/// Checks a FIFO path given on the command line.
pub fn check_path(p: &Path) -> Result<PathBuf> {
    if p.as_os_str().is_empty() {
        return Err(Error::usage(
            "the FIFO path is empty: give a path such as /tmp/myfifo",
        ));
    }
    if p.as_os_str().len() > 4095 {
        return Err(Error::usage(
            "the FIFO path is longer than PATH_MAX (4096 bytes)",
        ));
    }
    Ok(p.to_path_buf())
}

/// Runs the FIFO lab.
pub fn run(rec: &mut Recorder, cfg: &FifoConfig) -> Result<()> {
    match cfg {
        FifoConfig::Demo { path, message } => demo(rec, path.as_deref(), message),
        FifoConfig::Read { path } => one_end(rec, path, None),
        FifoConfig::Write { path, message } => one_end(rec, path, Some(message)),
    }
}

/// What this run created, to undo on the way out (and only that).
#[derive(Default)]
struct Created {
    dir: Option<Made>,
    fifo: Option<Made>,
}

impl Created {
    fn remove(&mut self, rec: &mut Recorder) {
        if let Some(m) = self.fifo.take() {
            m.remove(
                rec,
                false,
                "the FIFO's name is removed; ipclab leaves nothing behind",
            );
        }
        if let Some(d) = self.dir.take() {
            d.remove(rec, true, "the private directory is removed");
        }
    }
}

/// Makes sure a FIFO exists at `path` without following a symlink or
/// touching anything that is not a FIFO. Records the FIFO if it made it.
fn ensure_fifo(rec: &mut Recorder, path: &Path, created: &mut Created) -> Result<()> {
    rec.note_err("nothing there yet: ipclab will create the FIFO");
    match file::lstat(rec, path) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFIFO => {
            rec.message(format!("{} is already a FIFO: using it, and leaving it in place", path.display()));
            Ok(())
        }
        Ok(st) => Err(Error::usage(format!(
            "{} exists and is {}, not a FIFO; ipclab never replaces or follows it — give a new path",
            path.display(),
            file::kind_text(st.st_mode)
        ))),
        Err(e) if e.errno == Errno::ENOENT => {
            rec.note_err("mkfifo failed: does the directory exist and may you write there?");
            match file::mkfifo(rec, path, 0o600) {
                Ok(()) => {
                    created.fifo = Some(Made::look(rec, path, "FIFO")?);
                    Ok(())
                }
                Err(e) => Err(Error::SysHint(e, format!("cannot create a FIFO at {}", path.display()))),
            }
        }
        Err(e) => Err(Error::SysHint(e, format!("cannot look at {}", path.display()))),
    }
}

/// Opens the FIFO and checks, on the descriptor itself, that it is one:
/// O_NOFOLLOW refuses a symlink, fstat catches a swap after lstat.
fn open_fifo(rec: &mut Recorder, path: &Path, write: bool, waits: &'static str) -> Result<OwnedFd> {
    let acc = if write {
        OFlag::O_WRONLY
    } else {
        OFlag::O_RDONLY
    };
    rec.note(if write {
        "open for writing returned: a reader has the FIFO open too"
    } else {
        "open for reading returned: a writer has the FIFO open too"
    });
    let fd = signal::interruptible(rec, |rec| {
        file::openat(
            rec,
            path,
            acc | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Some(waits),
        )
    })?;
    let st = file::fstat(rec, fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        file::close(rec, fd)?;
        return Err(Error::usage(format!(
            "{} is not a FIFO any more; refusing to use it",
            path.display()
        )));
    }
    Ok(fd)
}

fn fresh_dir(rec: &mut Recorder, created: &mut Created) -> Result<PathBuf> {
    let dir = Made::fresh_dir(rec)?;
    let path = dir.path.clone();
    created.dir = Some(dir);
    Ok(path)
}

fn demo(rec: &mut Recorder, path: Option<&Path>, msg: &[u8]) -> Result<()> {
    let mut created = Created::default();
    let result = demo_inner(rec, path, msg, &mut created);
    created.remove(rec);
    result
}

fn demo_inner(
    rec: &mut Recorder,
    path: Option<&Path>,
    msg: &[u8],
    created: &mut Created,
) -> Result<()> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => fresh_dir(rec, created)?.join("fifo"),
    };
    if created.dir.is_some() {
        file::mkfifo(rec, &path, 0o600)?;
        created.fifo = Some(Made::look(rec, &path, "FIFO")?);
    } else {
        ensure_fifo(rec, &path, created)?;
    }
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| {
            let fd = open_fifo(rec, &path, false, "waiting for a writer to open the FIFO")?;
            let mut buf = [0u8; 4096];
            rec.waiting("waiting for the writer's bytes");
            let got = crate::lab::read_to_eof(rec, fd.as_fd(), &mut buf, MAX_MESSAGE);
            let (data, _) = match got {
                Ok(d) => d,
                Err(e) => {
                    let _ = file::close(rec, fd);
                    return Err(e);
                }
            };
            rec.message(format!("reader got: {}", printable(&data)));
            file::close(rec, fd)?;
            Ok(())
        }),
        Forked::Parent { child } => {
            let side = writer_side(rec, &path, msg);
            match wait::finish(rec, child, side)? {
                WaitStatus::Exited(_, 0) => {
                    rec.message(ERRATUM);
                    Ok(())
                }
                other => Err(Error::protocol(process::wait_status_text(&other))),
            }
        }
    }
}

fn writer_side(rec: &mut Recorder, path: &Path, msg: &[u8]) -> Result<()> {
    rec.note("the writer waits a moment, so you can see the reader blocked in open()");
    wait::sleep(rec, Duration::from_millis(300))?;
    let fd = open_fifo(rec, path, true, "waiting for a reader to open the FIFO")?;
    if let Err(e) = file::write(rec, fd.as_fd(), msg) {
        let _ = file::close(rec, fd);
        return Err(e.into());
    }
    rec.note("the only writer closes: the reader's next read() returns 0 (EOF)");
    file::close(rec, fd)?;
    Ok(())
}

/// `fifo read PATH` / `fifo write PATH MSG`: one end, for two terminals.
fn one_end(rec: &mut Recorder, path: &Path, write: Option<&[u8]>) -> Result<()> {
    let mut created = Created::default();
    let result = (|| -> Result<()> {
        ensure_fifo(rec, path, &mut created)?;
        match write {
            Some(msg) => {
                let shown = path.display();
                rec.waiting(format!(
                    "waiting for a reader: run `ipclab fifo read {shown}` elsewhere"
                ));
                let fd = open_fifo(rec, path, true, "waiting for a reader")?;
                let wrote = file::write(rec, fd.as_fd(), msg);
                file::close(rec, fd)?;
                wrote?;
            }
            None => {
                let shown = path.display();
                rec.waiting(format!(
                    "waiting for a writer: run `ipclab fifo write {shown} MSG` elsewhere"
                ));
                let fd = open_fifo(rec, path, false, "waiting for a writer")?;
                let mut buf = [0u8; 4096];
                let got = (|| -> Result<()> {
                    loop {
                        rec.waiting("waiting for bytes (EOF once every writer has closed)");
                        wait::readable(rec, fd.as_fd(), None)?;
                        let n = file::read(rec, fd.as_fd(), &mut buf)?;
                        if n == 0 {
                            return Ok(());
                        }
                        rec.message(format!("read: {}", printable(&buf[..n])));
                    }
                })();
                file::close(rec, fd)?;
                got?;
            }
        }
        rec.message(ERRATUM);
        Ok(())
    })();
    created.remove(rec);
    result
}
