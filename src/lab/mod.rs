//! One module per subcommand. Experiments call `sys` and never print.

pub mod bench;
pub mod errata;
pub mod fifo;
mod made;
pub mod net;
pub mod ping;
pub mod pipe;
pub mod privs;
pub mod repeater;
pub mod rpc;
pub mod shm;
pub mod sniff;
pub mod tcp;
pub mod tour;
pub mod udp;
pub mod unix;
pub mod wait;

use std::os::fd::BorrowedFd;

pub use made::Made;

use crate::error::{Error, Result};
use crate::sys;
use crate::trace::{Recorder, SummaryRow};

/// The longest message a pipe or FIFO lab sends: PIPE_BUF, the size the
/// kernel writes into a pipe atomically.
pub const MAX_MESSAGE: usize = 4096;

/// Checks a message given as `what` on the command line: 1 to
/// [`MAX_MESSAGE`] bytes (an empty write sends nothing at all).
pub fn check_message(what: &str, msg: &str) -> Result<Vec<u8>> {
    if msg.is_empty() {
        return Err(crate::error::Error::usage(format!(
            "{what} is empty: an empty write sends nothing; give 1 to {MAX_MESSAGE} bytes"
        )));
    }
    if msg.len() > MAX_MESSAGE {
        return Err(crate::error::Error::usage(format!(
            "{what} is {} bytes; at most {MAX_MESSAGE} (PIPE_BUF, written atomically)",
            msg.len()
        )));
    }
    Ok(msg.as_bytes().to_vec())
}

/// Runs `setup` on a fresh descriptor and hands both back; if `setup`
/// fails, closes the descriptor with a recorded `close(2)` first — simply
/// dropping the `OwnedFd` would close it without a step.
pub fn set_up<T>(
    rec: &mut Recorder,
    fd: std::os::fd::OwnedFd,
    setup: impl FnOnce(&mut Recorder, BorrowedFd<'_>) -> Result<T>,
) -> Result<(std::os::fd::OwnedFd, T)> {
    use std::os::fd::AsFd;
    match setup(rec, fd.as_fd()) {
        Ok(v) => Ok((fd, v)),
        Err(e) => {
            rec.note("setting the descriptor up failed: it is closed before the error is reported");
            let _ = sys::file::close(rec, fd);
            Err(e)
        }
    }
}

/// Runs `body` as a forked child and ends the child with `exit_group`:
/// status 0 when it succeeds, 1 when it fails. Never returns.
pub fn child_exit(rec: &mut Recorder, body: impl FnOnce(&mut Recorder) -> Result<()>) -> ! {
    let code = match body(rec) {
        Ok(()) => 0,
        Err(Error::Interrupted(sig)) => {
            rec.message(format!("child stopped: {}", Error::Interrupted(sig)));
            128 + sig
        }
        Err(e) => {
            rec.message(format!("child failed: {e}"));
            1
        }
    };
    sys::process::exit(rec, code)
}

/// Reads until end of file through `buf`, keeping at most `keep` bytes of
/// what arrives (the rest is counted, not stored: memory stays bounded).
/// Each read is preceded by a wait that lets Ctrl-C in; the waiting reason
/// the caller set with [`Recorder::waiting`] is shown on the first.
/// Returns (kept bytes, total bytes).
pub fn read_to_eof(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    keep: usize,
) -> Result<(Vec<u8>, usize)> {
    let mut kept = Vec::new();
    let mut total = 0;
    loop {
        wait::readable(rec, fd, None)?;
        let n = sys::file::read(rec, fd, buf)?;
        if n == 0 {
            return Ok((kept, total));
        }
        rec.waiting("waiting for more bytes, or EOF");
        total += n;
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// Runs a lab as one section of a bigger run and returns its summary row.
pub fn run_section(
    rec: &mut Recorder,
    name: &str,
    title: &str,
    lab: impl FnOnce(&mut Recorder) -> Result<()>,
) -> (SummaryRow, Result<()>) {
    rec.section(name, title);
    measure(rec, name, lab)
}

/// Runs a lab and counts the syscalls it (and its children) made.
pub fn measure(
    rec: &mut Recorder,
    name: &str,
    lab: impl FnOnce(&mut Recorder) -> Result<()>,
) -> (SummaryRow, Result<()>) {
    let (calls0, failed0, provoked0) = rec.counts();
    let result = lab(rec);
    let (calls1, failed1, provoked1) = rec.counts();
    let row = SummaryRow {
        lab: name.to_string(),
        syscalls: calls1 - calls0,
        failed: failed1 - failed0,
        provoked: provoked1 - provoked0,
        result: match &result {
            Ok(()) => "ok".to_string(),
            Err(Error::Interrupted(sig)) => format!("stopped by {}", signal_name(*sig)),
            Err(e) => format!("failed: {e}"),
        },
    };
    (row, result)
}

/// A signal number as its name (`SIGINT`).
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| sig.to_string(), |s| s.as_str().to_string())
}
