//! The errata of the notes' pipe and FIFO programs: the mkfifo path, the
//! missing NUL after read(), a FIFO's one stream, and the kernel's names.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::lab::{child_exit, wait, Made};
use crate::sys::process::{self, Forked};
use crate::sys::{cwd, file};
use crate::trace::names::printable;
use crate::trace::Recorder;

/// The notes' FIFO name as C reads it: `"\tmp\testpip"` is TAB, "mp", TAB,
/// "estpip" — a relative name with two TABs, not /tmp/testpip.
const NOTES_NAME: &str = "\tmp\testpip";

/// Erratum 1: `mkfifo("\tmp\testpip", 0777)`, run as the notes' program runs it,
/// in a private directory made the working directory.
pub fn mkfifo_path(rec: &mut Recorder) -> Result<()> {
    let home = cwd::getcwd(rec)?;
    let dir = Made::private_dir(rec)?;
    rec.note("the experiment runs here, as the notes' program would run in whatever directory it was started from");
    let result = match cwd::chdir(rec, &dir.path) {
        Ok(()) => {
            let r = make_and_look(rec);
            rec.note("back to where ipclab started");
            let back = cwd::chdir(rec, &home);
            r.and(back.map_err(Error::from))
        }
        Err(e) => Err(e.into()),
    };
    dir.remove(rec, true, "the private directory is removed");
    result
}

fn make_and_look(rec: &mut Recorder) -> Result<()> {
    let old = cwd::umask(
        rec,
        0o022,
        "umask() cannot be read without setting it: this sets 022 and returns the mask the process had",
    )?;
    cwd::umask(
        rec,
        old,
        &format!(
            "the mask is put back: {old:03o}; every mode a file is created with loses these bits"
        ),
    )?;
    let name = Path::new(NOTES_NAME);
    rec.note(
        "strace prints the name exactly as the C source spells it, \"\\tmp\\testpip\" — but these \\t are \
         TAB characters, escaped in the output: a relative name in the working directory",
    );
    file::mkfifo(rec, name, 0o777)?;
    let made = Made::look(rec, name, "FIFO")?;
    rec.expect_err()
        .note_err("as expected: there is no /tmp/testpip; the FIFO is in the working directory");
    let tmp = file::lstat(rec, Path::new("/tmp/testpip"));
    {
        let mode = made.mode & 0o7777;
        rec.message(format!(
            "the FIFO is named TAB \"mp\" TAB \"estpip\" in the working directory, not /tmp/testpip; \
             its mode is {mode:04o}, not 0777: the umask {old:03o} took those bits away (0777 & ~{old:03o}). \
             In C the path must be \"/tmp/testpip\" (forward slashes); the mode can be forced with fchmod afterwards",
        ));
    }
    if tmp.is_ok() {
        rec.message(
            "(something else made a /tmp/testpip on this machine; ipclab did not touch it)",
        );
    }
    made.remove(rec, false, "the TAB-named FIFO is removed");
    Ok(())
}

/// Erratum 2: `read(fd[0], str, 100)` then `cout << str`: the bytes read are not
/// ended by a NUL, so a buffer that held older bytes prints them too.
pub fn read_nul(rec: &mut Recorder) -> Result<()> {
    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    let mut str_ = [0u8; 100]; // the notes' char str[100], zeroed here
    let result = (|| -> Result<()> {
        rec.note("an earlier message goes through the pipe first…");
        file::write(rec, wr.as_fd(), b"goodbye, cruel world")?;
        rec.note("…and is read into the same buffer the notes' program uses");
        file::read(rec, rd.as_fd(), &mut str_)?;
        rec.note("now the notes' message");
        file::write(rec, wr.as_fd(), b"hello")?;
        rec.note("read() returns 5 and writes 5 bytes: no NUL after them");
        let n = file::read(rec, rd.as_fd(), &mut str_)?;
        let until_nul = str_.iter().position(|&b| b == 0).unwrap_or(str_.len());
        rec.message(format!(
            "read() put {n} bytes at the start of str: \"{}\"; the rest of the buffer still holds \"{}\" and then NULs",
            printable(&str_[..n]),
            printable(&str_[n..until_nul])
        ));
        rec.message(format!(
            "`cout << str` prints up to the first NUL: \"{}\" — not what was sent",
            printable(&str_[..until_nul])
        ));
        rec.message(format!(
            "the fix: use the length read() returned — `cout.write(str, n)` or `string(str, n)` gives \"{}\"",
            printable(&str_[..n])
        ));
        Ok(())
    })();
    file::close(rec, rd)?;
    file::close(rec, wr)?;
    result
}

/// Erratum 8a: A FIFO is one byte stream on one machine: a process that writes
/// into it reads back its own bytes, and the file holds no data.
pub fn fifo_duplex(rec: &mut Recorder) -> Result<()> {
    let dir = Made::private_dir(rec)?;
    let path = dir.path.join("fifo");
    let result = (|| -> Result<()> {
        file::mkfifo(rec, &path, 0o600)?;
        let made = Made::look(rec, &path, "FIFO")?;
        let r = (|| -> Result<()> {
            rec.note("O_RDWR: Linux lets one descriptor hold both ends of a FIFO without blocking (POSIX leaves it undefined)");
            let fd = file::openat(
                rec,
                &path,
                OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                None,
            )?;
            let r = (|| -> Result<()> {
                rec.note("\"end A\" writes its question");
                file::write(rec, fd.as_fd(), b"ping")?;
                rec.note("4 bytes are in the pipe, yet the file's size is 0: the data lives in this kernel's memory, never on a disk another machine could share");
                file::lstat(rec, &path)?;
                let mut buf = [0u8; 16];
                rec.note("\"end A\" reads the answer… and gets its own question back: one stream, not two directions");
                let n = file::read(rec, fd.as_fd(), &mut buf)?;
                rec.message(format!(
                    "read back \"{}\": a FIFO is one byte stream — two-way talk needs two FIFOs (or a socket), \
                     and its path is only a meeting point inside one machine, so it cannot cross the network \
                     (full-duplex, networked named pipes are a Windows feature)",
                    printable(&buf[..n])
                ));
                Ok(())
            })();
            file::close(rec, fd)?;
            r
        })();
        made.remove(rec, false, "the FIFO is removed");
        r
    })();
    dir.remove(rec, true, "the private directory is removed");
    result
}

/// Erratum 8b: The notes call `pipe()` and `fork()`; the kernel sees `pipe2` and
/// `clone`, and so do strace and ipclab.
pub fn pipe_names(rec: &mut Recorder) -> Result<()> {
    let (rd, wr) = file::pipe2(rec, OFlag::empty())?;
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |_| Ok(())),
        Forked::Parent { child } => {
            let side = file::close(rec, rd)
                .and_then(|()| file::close(rec, wr))
                .map_err(Error::from);
            wait::expect_exit_0(wait::finish(rec, child, side)?)?;
            rec.message(
                "the program called pipe() and fork(); the kernel ran pipe2 and clone, as strace shows them — \
                 ipclab prints the kernel's name and puts the C library's in brackets ([pipe() in libc])",
            );
            Ok(())
        }
    }
}
