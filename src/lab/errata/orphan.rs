//! Erratum 3: The notes' parent never waits for its child. Two lessons: a child
//! whose parent exits first is an orphan and is re-parented (getppid before
//! and after); a child whose parent lives on without wait() is a zombie
//! (`State: Z` in /proc) until it is reaped.
//!
//! The notes' child sleeps a second so that the parent is gone; here the
//! child waits for EOF on a pipe whose only write end the parent holds,
//! which comes exactly when the parent exits — bounded, and no guessing.
//! A second pipe keeps the parent until the child has seen it.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::lab::{child_exit, wait};
use crate::sys::file;
use crate::sys::poll::{self, Lets};
use crate::sys::process::{self, Forked};
use crate::trace::Recorder;

use super::read_small;

pub fn run(rec: &mut Recorder) -> Result<()> {
    orphan(rec)?;
    zombie(rec)
}

fn orphan(rec: &mut Recorder) -> Result<()> {
    let me = rec.pid();
    process::set_child_subreaper(
        rec,
        "orphans among ipclab's descendants now come back to ipclab instead of to init (pid 1), so ipclab can reap them",
    )?;
    rec.note("pipe 1: the child tells the parent it has seen it (so the parent does not leave too early)");
    let (seen_rd, seen_wr) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
    rec.note("pipe 2: only the parent holds its write end, so the child's read sees EOF exactly when the parent exits");
    let (gone_rd, gone_wr) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
    rec.note("the notes' parent: it will fork the child and return, without wait()");
    match process::fork(rec)? {
        Forked::Child => {
            child_exit(rec, |rec| match process::fork(rec)? {
                Forked::Child => {
                    child_exit(rec, |rec| {
                        file::close(rec, seen_rd)?;
                        file::close(rec, gone_wr)?;
                        let parent = rec_parent(rec, "its parent is the process that forked it")?;
                        rec.note("tell the parent: it may go now");
                        file::write(rec, seen_wr.as_fd(), b"!")?;
                        file::close(rec, seen_wr)?;
                        rec.waiting("waiting for the parent to exit (EOF on pipe 2)");
                        wait::readable(rec, gone_rd.as_fd(), Some(Duration::from_secs(10)))?;
                        let mut b = [0u8; 1];
                        rec.note("EOF: the parent's write end closed when it exited");
                        file::read(rec, gone_rd.as_fd(), &mut b)?;
                        file::close(rec, gone_rd)?;
                        // The kernel closes an exiting process's files before it
                        // re-parents its children: ask until the answer changes.
                        let mut now = parent;
                        for _ in 0..100 {
                            now = rec_parent(rec, "who the parent is now")?;
                            if now != parent {
                                break;
                            }
                            rec.note("still the old parent: it has closed its files but not finished exiting");
                            wait::sleep(rec, Duration::from_millis(10))?;
                        }
                        rec.message(format!(
                    "getppid() was {parent}, now {now}: the orphan was re-parented to {} — \
                     with no subreaper it would be init (pid 1)",
                    if now == me { "ipclab, the subreaper" } else { "its new parent" }
                ));
                        Ok(())
                    })
                }
                Forked::Parent { .. } => {
                    file::close(rec, seen_wr)?;
                    file::close(rec, gone_rd)?;
                    rec.waiting("waiting for the child to have seen its parent");
                    wait::readable(rec, seen_rd.as_fd(), Some(Duration::from_secs(10)))?;
                    let mut b = [0u8; 1];
                    file::read(rec, seen_rd.as_fd(), &mut b)?;
                    file::close(rec, seen_rd)?;
                    rec.message(
                    "the parent returns without calling wait(), as in the notes; its exit closes pipe 2's write end",
                );
                    // Kept open, unprinted, to the end: exit_group closes it,
                    // and that is the EOF the child waits for.
                    std::mem::forget(gone_wr);
                    Ok(())
                }
            })
        }
        Forked::Parent { child } => {
            rec.note(
                "ipclab keeps no end of the pipes: only the parent and the child talk through them",
            );
            let side = [seen_rd, seen_wr, gone_rd, gone_wr]
                .into_iter()
                .try_for_each(|fd| file::close(rec, fd))
                .map_err(Error::from);
            wait::expect_exit_0(wait::finish(rec, child, side)?)?;
            reap_orphan(rec)
        }
    }
}

fn rec_parent(rec: &mut Recorder, note: &str) -> Result<i32> {
    let n = note.to_string();
    Ok(process::getppid(rec, move |p| format!("{n}: pid {p}"))?.as_raw())
}

/// The grandchild became ipclab's child (the subreaper): find it through
/// its pidfd-less route — a wait with SIGCHLD let in — and reap it.
fn reap_orphan(rec: &mut Recorder) -> Result<()> {
    crate::sys::signal::catch_children(rec)?;
    // The orphan's pid is not known here; wait4(-1) reaps whichever child
    // of ipclab has ended: the only one left is the orphan.
    for _ in 0..50 {
        match process::wait4_any(rec)? {
            Some(st) => {
                rec.message(format!(
                    "ipclab, its new parent, reaped it: {}",
                    process::wait_status_text(&st)
                ));
                return Ok(());
            }
            None => {
                rec.waiting("waiting for the orphan to end (SIGCHLD)");
                match poll::ppoll(
                    rec,
                    &mut [],
                    Some(Duration::from_millis(200)),
                    Lets::StopsAndChildren,
                ) {
                    Ok(_) => {}
                    Err(e)
                        if e.errno == nix::errno::Errno::EINTR
                            && crate::sys::signal::stop_pending().is_none() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(Error::protocol("the orphan did not end within 10 s"))
}

fn zombie(rec: &mut Recorder) -> Result<()> {
    rec.note("a child that ends at once, with a parent (ipclab) that lives on");
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |_| Ok(())),
        Forked::Parent { child } => {
            let pidfd = process::pidfd_open(rec, child)?;
            let status = PathBuf::from(format!("/proc/{child}/status"));
            let r = (|| -> Result<()> {
                let mut set = [poll::pollfd(pidfd.as_fd(), libc::POLLIN)];
                rec.waiting("waiting for the child to end, without reaping it");
                rec.note("the child has ended; nobody has called wait() for it yet");
                poll::ppoll(rec, &mut set, Some(Duration::from_secs(10)), Lets::Stops)?;
                let text = read_small(
                    rec,
                    &status,
                    4096,
                    "what the kernel says of the ended child",
                )?;
                let state = text
                    .lines()
                    .find(|l| l.starts_with("State:"))
                    .unwrap_or("State: ?")
                    .replace('\t', " ");
                rec.message(format!(
                    "{state}: the child has exited, but its entry (pid, exit status) stays until its parent \
                     waits — the notes' parent, had it lived on without wait(), would leave one such zombie per child"
                ));
                process::wait4(rec, child, false)?;
                rec.expect_err()
                    .note_err("gone: the zombie was reaped, its pid is free again");
                if read_small(rec, &status, 4096, "").is_ok() {
                    return Err(Error::protocol("the child's /proc entry outlived wait4"));
                }
                Ok(())
            })();
            file::close(rec, pidfd)?;
            if r.is_err() {
                let _ = wait::stop(rec, child);
            }
            r
        }
    }
}
