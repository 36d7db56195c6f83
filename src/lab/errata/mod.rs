//! `ipclab errata`: the mistakes in the notes' programs, each shown by a
//! small traced experiment on the real kernel — bounded, leaving nothing
//! behind. With no name, all of them, one section each, like the tour.

mod backlog;
mod names;
mod orphan;
mod spin;
mod udp_wait;

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::lab::run_section;
use crate::sys::file;
use crate::trace::Recorder;

/// One erratum: its name on the command line, its title, and its experiment.
pub struct Erratum {
    pub name: &'static str,
    /// Its section's name in the tour.
    pub section: &'static str,
    pub title: &'static str,
    pub run: fn(&mut Recorder) -> Result<()>,
}

/// Every erratum, in the notes' order.
pub fn all() -> Vec<Erratum> {
    vec![
        Erratum {
            name: "mkfifo-path",
            section: "errata mkfifo-path",
            title: "mkfifo(\"\\tmp\\testpip\", 0777): \\t is a TAB, the name is relative, and 0777 is masked by the umask",
            run: names::mkfifo_path,
        },
        Erratum {
            name: "read-nul",
            section: "errata read-nul",
            title: "read(fd[0], str, 100) then cout << str: read() does not end the bytes with a NUL",
            run: names::read_nul,
        },
        Erratum {
            name: "no-wait",
            section: "errata no-wait",
            title: "the parent never waits for its child: an orphan is re-parented, a child nobody waits for is a zombie",
            run: orphan::run,
        },
        Erratum {
            name: "listen-backlog",
            section: "errata listen-backlog",
            title: "listen(5) does not \"let five connections queue\": it bounds the queue of completed connections",
            run: backlog::run,
        },
        Erratum {
            name: "eof-spin",
            section: "errata eof-spin",
            title: "the TCP server spins on EOF: `if data:` never sees recv() = 0 as the end",
            run: spin::run,
        },
        Erratum {
            name: "udp-timeout",
            section: "errata udp-timeout",
            title: "the UDP client waits for ever when a reply is lost: recv() with no timeout",
            run: udp_wait::run,
        },
        Erratum {
            name: "port-comment",
            section: "errata port-comment",
            title: "the TCP client's comment says port 6969, its code says 8989",
            run: port_comment,
        },
        Erratum {
            name: "fifo-duplex",
            section: "errata fifo-duplex",
            title: "a FIFO is not full-duplex and does not cross machines",
            run: names::fifo_duplex,
        },
        Erratum {
            name: "pipe-names",
            section: "errata pipe-names",
            title: "pipe() and fork() are pipe2 and clone at the kernel",
            run: names::pipe_names,
        },
    ]
}

/// The names `ipclab errata NAME` accepts.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|e| e.name).collect()
}

/// Checks NAME: one of [`names`].
pub fn check_name(name: &str) -> Result<()> {
    if names().contains(&name) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "no erratum named {name:?}; the errata are: {}",
        names().join(", ")
    )))
}

/// Runs the named erratum, or all of them; one section and summary row each.
pub fn run(rec: &mut Recorder, only: Option<&str>) -> Result<()> {
    let mut rows = Vec::new();
    let mut failed = 0;
    let mut stop = None;
    for e in all()
        .into_iter()
        .filter(|e| only.is_none_or(|n| n == e.name))
    {
        let (row, result) = run_section(rec, e.name, e.title, e.run);
        rows.push(row);
        match result {
            Err(Error::Interrupted(sig)) => {
                stop = Some(sig);
                break;
            }
            Err(_) => failed += 1,
            Ok(()) => {}
        }
    }
    rec.summary(&rows);
    if let Some(sig) = stop {
        return Err(Error::Interrupted(sig));
    }
    if failed > 0 {
        return Err(Error::protocol(format!(
            "{failed} errat{} failed; see the summary",
            if failed == 1 { "um" } else { "a" }
        )));
    }
    Ok(())
}

/// The errata the tour ends with: the first three.
pub fn for_tour() -> Vec<Erratum> {
    all().into_iter().take(3).collect()
}

fn port_comment(rec: &mut Recorder) -> Result<()> {
    rec.message(
        "the notes' TCP client says `# 端口 6969` (port 6969) in a comment and connects to 8989 in the code; \
         the server listens on 8989, so the code is right and the comment wrong. No experiment needed: \
         ipclab's client and server use 8989 by default, as the code does",
    );
    Ok(())
}

/// Reads a small text file (/proc) with traced openat/read/close; at most
/// `max` bytes are kept.
pub fn read_small(rec: &mut Recorder, path: &Path, max: usize, note: &str) -> Result<String> {
    read_until(rec, path, max, note, |_| false)
}

/// Like [`read_small`], but stops reading as soon as `enough` says the text
/// read so far holds what is wanted (a /proc table can be long).
pub fn read_until(
    rec: &mut Recorder,
    path: &Path,
    max: usize,
    note: &str,
    enough: impl Fn(&str) -> bool,
) -> Result<String> {
    rec.note(note.to_string());
    let fd = file::openat(rec, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, None)?;
    let mut buf = vec![0u8; max];
    let mut len = 0;
    let got = (|| -> Result<()> {
        while len < max {
            let n = file::read(rec, fd.as_fd(), &mut buf[len..])?;
            if n == 0 {
                break;
            }
            len += n;
            if enough(&String::from_utf8_lossy(&buf[..len])) {
                break;
            }
        }
        Ok(())
    })();
    file::close(rec, fd)?;
    got?;
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}
