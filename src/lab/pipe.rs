//! Anonymous pipe + fork, the notes' C++ example: pipe2 → clone → close the
//! unused end → write / read → close → wait4. Options show the pipe's edges:
//! direction, capacity (EAGAIN, a blocked write), EPIPE and SIGPIPE, the
//! missing EOF when a write end stays open, and two pipes for two-way talk.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use crate::error::{Error, Result};
use crate::lab::wait::{self, expect_exit_0};
use crate::lab::{child_exit, read_to_eof};
use crate::sys::file;
use crate::sys::process::{self, Forked};
use crate::sys::signal::{self, Disposition};
use crate::trace::names::printable;
use crate::trace::Recorder;

use crate::lab::MAX_MESSAGE;

/// What the pipe lab demonstrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeMode {
    /// The seed's program; `reverse` makes the parent the writer.
    Basic {
        reverse: bool,
    },
    Fill,
    Sigpipe,
    ForgetClose,
    Duplex,
}

/// A validated `ipclab pipe` invocation.
#[derive(Debug, Clone)]
pub struct PipeConfig {
    pub mode: PipeMode,
    pub message: Vec<u8>,
}

impl PipeConfig {
    /// Checks the message: not empty, at most [`MAX_MESSAGE`] bytes.
    pub fn new(mode: PipeMode, message: &str) -> Result<Self> {
        let message = crate::lab::check_message("--message", message)?;
        Ok(PipeConfig { mode, message })
    }
}

/// Runs the pipe lab.
pub fn run(rec: &mut Recorder, cfg: &PipeConfig) -> Result<()> {
    match cfg.mode {
        PipeMode::Basic { reverse } => basic(rec, &cfg.message, reverse),
        PipeMode::Fill => fill(rec),
        PipeMode::Sigpipe => sigpipe(rec, &cfg.message),
        PipeMode::ForgetClose => forget_close(rec, &cfg.message),
        PipeMode::Duplex => duplex(rec, &cfg.message),
    }
}

fn basic(rec: &mut Recorder, msg: &[u8], reverse: bool) -> Result<()> {
    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| {
            if reverse {
                reader(rec, rd, wr, "parent")
            } else {
                writer(rec, rd, wr, msg)
            }
        }),
        Forked::Parent { child } => {
            let side = if reverse {
                writer(rec, rd, wr, msg)
            } else {
                reader(rec, rd, wr, "child")
            };
            expect_exit_0(wait::finish(rec, child, side)?)
        }
    }
}

/// The writing side: close the unused read end, write, close (EOF for the reader).
fn writer(rec: &mut Recorder, rd: OwnedFd, wr: OwnedFd, msg: &[u8]) -> Result<()> {
    rec.note("the writer closes the read end it does not use");
    file::close(rec, rd)?;
    file::write(rec, wr.as_fd(), msg)?;
    rec.note("the last write end closes: the reader's next read() returns 0 (EOF)");
    file::close(rec, wr)?;
    Ok(())
}

/// The reading side: close the unused write end, read to EOF, close.
fn reader(rec: &mut Recorder, rd: OwnedFd, wr: OwnedFd, from: &str) -> Result<()> {
    rec.note("the reader closes the write end it does not use — while any write end is open, read() never sees EOF");
    file::close(rec, wr)?;
    let mut buf = [0u8; 100]; // the seed's char str[100]
    rec.waiting(format!("waiting for the {from} to write"));
    let (data, _) = read_to_eof(rec, rd.as_fd(), &mut buf, MAX_MESSAGE)?;
    rec.message(format!(
        "message written by the {from}: {}",
        printable(&data)
    ));
    file::close(rec, rd)?;
    Ok(())
}

/// Fills the pipe without blocking (EAGAIN), then shows a write that blocks
/// until a reader makes room.
fn fill(rec: &mut Recorder) -> Result<()> {
    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    let capacity = file::fcntl_getpipe_sz(rec, wr.as_fd())?;
    let flags = file::fcntl_getfl(rec, wr.as_fd())?;
    file::fcntl_setfl(rec, wr.as_fd(), flags | OFlag::O_NONBLOCK)?;
    let chunk = [b'x'; 4096];
    let mut total = 0usize;
    // Bounded: a pipe holds at most /proc/sys/fs/pipe-max-size (1 MiB by default).
    for _ in 0..=(1 << 20) / chunk.len() + 1 {
        // The write that finds the pipe full fails on purpose: the lesson.
        rec.expect_err();
        match file::write(rec, wr.as_fd(), &chunk) {
            Ok(n) => total += n,
            Err(e) if e.errno == Errno::EAGAIN => break,
            Err(e) => return Err(e.into()),
        }
    }
    rec.message(format!(
        "the pipe took {total} bytes (F_GETPIPE_SZ said {capacity}); the next write would block, so O_NONBLOCK gave EAGAIN"
    ));
    file::fcntl_setfl(rec, wr.as_fd(), flags)?;
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| {
            rec.note("the reader closes the write end it does not use");
            file::close(rec, wr)?;
            rec.note("the reader dawdles, so the writer's blocking write has to wait");
            wait::sleep(rec, Duration::from_millis(200))?;
            let mut buf = vec![0u8; 65536];
            let (_, n) = read_to_eof(rec, rd.as_fd(), &mut buf, 0)?;
            rec.message(format!(
                "the reader drained {}, then saw EOF",
                crate::trace::names::bytes(n)
            ));
            file::close(rec, rd)?;
            Ok(())
        }),
        Forked::Parent { child } => {
            let side = (|| -> Result<()> {
                file::close(rec, rd)?;
                rec.waiting("the pipe is full: waiting for the reader to make room");
                rec.note(
                    "this blocking write slept until the reader drained the pipe (see its time)",
                );
                file::write(rec, wr.as_fd(), b"!")?;
                file::close(rec, wr)?;
                Ok(())
            })();
            expect_exit_0(wait::finish(rec, child, side)?)
        }
    }
}

/// EPIPE with SIGPIPE ignored; then death by SIGPIPE with the default action.
fn sigpipe(rec: &mut Recorder, msg: &[u8]) -> Result<()> {
    signal::sigaction(rec, Signal::SIGPIPE, Disposition::Ignore)?;
    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    rec.note("the only read end is closed: nobody can ever read this pipe");
    file::close(rec, rd)?;
    rec.expect_err().note_err(
        "no reader is left: with SIGPIPE ignored, write() fails with EPIPE instead of killing us",
    );
    match file::write(rec, wr.as_fd(), msg) {
        Err(e) if e.errno == Errno::EPIPE => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {
            return Err(Error::protocol(
                "write to a pipe without a reader succeeded",
            ))
        }
    }
    file::close(rec, wr)?;

    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    rec.note("again no reader: the child will inherit only the write end");
    file::close(rec, rd)?;
    match process::fork(rec)? {
        Forked::Child => {
            // The child runs with the default disposition: SIGPIPE terminates.
            let _ = signal::sigaction(rec, Signal::SIGPIPE, Disposition::Default);
            let _ = file::write_may_die(rec, wr.as_fd(), msg);
            rec.message(
                "still alive after writing to a pipe without a reader: SIGPIPE did not kill us",
            );
            process::exit(rec, 3)
        }
        Forked::Parent { child } => {
            rec.note("the parent's copy of the write end is not needed");
            let side = file::close(rec, wr).map_err(Error::from);
            match wait::finish(rec, child, side)? {
                WaitStatus::Signaled(_, Signal::SIGPIPE, _) => {
                    rec.message("the child was killed by SIGPIPE: the default action of writing to a pipe nobody reads");
                    Ok(())
                }
                other => Err(Error::protocol(format!(
                    "expected the child to die of SIGPIPE, but {}",
                    process::wait_status_text(&other)
                ))),
            }
        }
    }
}

/// The parent forgets to close its write end: no EOF until it does.
fn forget_close(rec: &mut Recorder, msg: &[u8]) -> Result<()> {
    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| writer(rec, rd, wr, msg)),
        Forked::Parent { child } => {
            let mut buf = [0u8; 100];
            let side = (|| -> Result<usize> {
                rec.waiting("waiting for the child to write");
                wait::readable(rec, rd.as_fd(), None)?;
                Ok(file::read(rec, rd.as_fd(), &mut buf)?)
            })();
            let n = match side {
                Ok(n) => n,
                // finish stops the child and hands the error back.
                Err(e) => return wait::finish(rec, child, Err(e)).map(drop),
            };
            rec.message(format!(
                "message written by the child: {}",
                printable(&buf[..n])
            ));
            expect_exit_0(wait::reap(rec, child)?)?;
            rec.note(format!(
                "no EOF although the child has exited: this process still holds write end fd {} — a plain read() here would hang forever",
                std::os::fd::AsRawFd::as_raw_fd(&wr)
            ));
            rec.waiting("waiting at most 1 s for data or EOF");
            rec.note("nothing within 1 s: no data, and no EOF either");
            if wait::readable(rec, rd.as_fd(), Some(Duration::from_secs(1)))? {
                return Err(Error::protocol(
                    "poll reported an event although a write end is still open",
                ));
            }
            rec.note("the forgotten write end is closed at last: no writer is left");
            file::close(rec, wr)?;
            rec.note("now read() returns 0: end of file");
            let n = file::read(rec, rd.as_fd(), &mut buf)?;
            if n != 0 {
                return Err(Error::protocol(
                    "expected EOF after the last write end closed",
                ));
            }
            file::close(rec, rd)?;
            Ok(())
        }
    }
}

/// Two pipes, one per direction: a pipe is one-way, so two-way talk needs two.
fn duplex(rec: &mut Recorder, msg: &[u8]) -> Result<()> {
    rec.note("pipe 1 carries parent → child");
    let (down_rd, down_wr) = file::pipe2(rec, OFlag::empty())?;
    rec.note("pipe 2 carries child → parent");
    let (up_rd, up_wr) = file::pipe2(rec, OFlag::empty())?;
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| {
            rec.note("the child only reads pipe 1: close its write end");
            file::close(rec, down_wr)?;
            rec.note("the child only writes pipe 2: close its read end");
            file::close(rec, up_rd)?;
            let mut buf = [0u8; 100];
            rec.waiting("waiting for the parent's question");
            let (question, _) = read_to_eof(rec, down_rd.as_fd(), &mut buf, MAX_MESSAGE)?;
            file::close(rec, down_rd)?;
            let mut reply = b"child got: ".to_vec();
            reply.extend_from_slice(&question);
            file::write(rec, up_wr.as_fd(), &reply)?;
            file::close(rec, up_wr)?;
            Ok(())
        }),
        Forked::Parent { child } => {
            let side = (|| -> Result<()> {
                rec.note("the parent only writes pipe 1: close its read end");
                file::close(rec, down_rd)?;
                rec.note("the parent only reads pipe 2: close its write end");
                file::close(rec, up_wr)?;
                file::write(rec, down_wr.as_fd(), msg)?;
                rec.note("EOF on pipe 1 tells the child the question is complete");
                file::close(rec, down_wr)?;
                let mut buf = [0u8; 100];
                rec.waiting("waiting for the child's reply on pipe 2");
                let (reply, _) = read_to_eof(rec, up_rd.as_fd(), &mut buf, 2 * MAX_MESSAGE)?;
                rec.message(format!("reply from the child: {}", printable(&reply)));
                file::close(rec, up_rd)?;
                Ok(())
            })();
            expect_exit_0(wait::finish(rec, child, side)?)
        }
    }
}
