//! Shared memory, which the notes name beside sockets as a medium for
//! client–server: shm_open (an openat under /dev/shm) → ftruncate →
//! mmap(MAP_SHARED) → close → clone; the child stores the message into the
//! mapping and wakes the parent with futex(FUTEX_WAKE); the parent sleeps
//! in futex(FUTEX_WAIT) until then and reads it → munmap → shm_unlink (an
//! unlink) → wait4. `--memfd` makes the object with memfd_create (no name
//! anywhere); `--no-sync` leaves the futex out and shows the race.
//!
//! The lesson: the bytes move without any syscall. Each process stores to
//! and loads from its own memory, which happens to be the same pages, so
//! strace sees the futex calls and never the data — unlike a pipe or a
//! socket, where every byte goes through write() and read().
//!
//! The page holds a 32-bit futex word (0: nothing yet, 1: written) and,
//! from byte 8, the message as a C string. The writer stores the message,
//! then sets the word (a release store), then calls FUTEX_WAKE; the reader
//! loads the word (acquire) and calls FUTEX_WAIT only while it is 0. The
//! kernel re-checks the word and goes to sleep in one step, so a wake in
//! between is never lost: FUTEX_WAIT then returns EAGAIN at once.
//!
//! Waiting: FUTEX_WAIT cannot be a ppoll (nothing here is a descriptor), so
//! it runs inside `sys::signal::interruptible`, with the stop signals let
//! in for that call alone, and with a 5 s timeout, so that a child that
//! dies before waking us cannot hang the parent. The alternative, a loop of
//! short timed waits with the signals held, would print a step per round
//! and answer Ctrl-C only at the next timeout.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::lab::wait::{self, expect_exit_0};
use crate::lab::{child_exit, Made};
use crate::sys::mem::{self, Mapping};
use crate::sys::process::{self, Forked};
use crate::sys::{file, signal};
use crate::trace::names::printable;
use crate::trace::Recorder;

/// The object's size: one page.
pub const SIZE: usize = 4096;
/// Where the message starts (after the futex word and padding).
const MSG_AT: usize = 8;
/// The longest message: the page less the word and the terminating NUL.
pub const MAX_MESSAGE: usize = SIZE - MSG_AT - 1;
/// The futex word's values.
const EMPTY: u32 = 0;
const WRITTEN: u32 = 1;
/// How long the reader waits for the writer's FUTEX_WAKE.
const WAIT_LIMIT: Duration = Duration::from_secs(5);
/// How long the writer dawdles before writing, so the reader is seen waiting.
const DAWDLE: Duration = Duration::from_millis(200);

/// A validated `ipclab shm`.
#[derive(Debug, Clone)]
pub struct ShmConfig {
    pub message: Vec<u8>,
    /// Wait for the writer with a futex (false: `--no-sync`).
    pub sync: bool,
    /// memfd_create instead of shm_open.
    pub memfd: bool,
    /// The /dev/shm name (without a slash); None: a fresh one per run.
    pub name: Option<String>,
}

impl ShmConfig {
    pub fn new(message: &str, sync: bool, memfd: bool, name: Option<&str>) -> Result<Self> {
        if message.is_empty() {
            return Err(Error::usage(format!(
                "--message is empty; give 1 to {MAX_MESSAGE} bytes"
            )));
        }
        if message.len() > MAX_MESSAGE {
            return Err(Error::usage(format!(
                "--message is {} bytes; at most {MAX_MESSAGE} (one {SIZE}-byte page, less the futex word and a NUL)",
                message.len()
            )));
        }
        Ok(ShmConfig {
            message: message.as_bytes().to_vec(),
            sync,
            memfd,
            name: name.map(check_name).transpose()?,
        })
    }
}

/// Checks a shared-memory name as glibc's shm_open does: one leading "/"
/// allowed, then 1 to 255 bytes, no other "/", not "." or "..".
pub fn check_name(name: &str) -> Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let bad = |why: &str| {
        Error::usage(format!(
            "--name {name:?}: {why}; give a name such as ipclab-demo (it becomes /dev/shm/ipclab-demo)"
        ))
    };
    if n.is_empty() {
        return Err(bad("the name is empty"));
    }
    if n.contains('/') {
        return Err(bad("a shared-memory name has no \"/\" after the first"));
    }
    if n == "." || n == ".." {
        return Err(bad("\".\" and \"..\" are not names"));
    }
    if n.len() > 255 || n.contains('\0') {
        return Err(bad("at most 255 bytes, no NUL"));
    }
    Ok(n.to_string())
}

/// The name this run uses when none was given: private to the run.
fn fresh_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("ipclab-{}-{nanos:08x}", std::process::id())
}

/// The /dev/shm object this run made, to remove on every way out.
struct Object {
    made: Made,
    name: String,
}

impl Object {
    fn remove(self, rec: &mut Recorder) {
        let name = self.name;
        self.made.remove_with(
            rec,
            "the object's name is removed (shm_unlink); its pages are freed once no one maps them — ipclab leaves nothing in /dev/shm",
            |rec, _| mem::shm_unlink(rec, &name),
        );
    }
}

/// `ipclab shm`.
pub fn run(rec: &mut Recorder, cfg: &ShmConfig) -> Result<()> {
    let mut object: Option<Object> = None;
    let result = run_inner(rec, cfg, &mut object);
    if let Some(o) = object.take() {
        o.remove(rec);
    }
    result
}

/// shm_open or memfd_create, then ftruncate and mmap; the descriptor is
/// closed once mapped.
fn map_object(rec: &mut Recorder, cfg: &ShmConfig, object: &mut Option<Object>) -> Result<Mapping> {
    let fd = if cfg.memfd {
        mem::memfd_create(rec, "ipclab")?
    } else {
        let name = cfg.name.clone().unwrap_or_else(fresh_name);
        let path = mem::shm_path(&name);
        let fd = match mem::shm_open(rec, &name) {
            Ok(fd) => fd,
            Err(e) if e.errno == Errno::EEXIST => {
                return Err(Error::usage(format!(
                    "{path} exists already; ipclab never opens or removes a shared-memory object it did not create — give another --name"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let (fd, made) = crate::lab::set_up(rec, fd, |rec, _| {
            Made::look(rec, std::path::Path::new(&path), "shared-memory object")
        })?;
        *object = Some(Object { made, name });
        fd
    };
    let (fd, map) = crate::lab::set_up(rec, fd, |rec, fd| {
        rec.note(format!(
            "a new object is 0 bytes long; now it is one {SIZE}-byte page of zeros (mapping past its end would fault with SIGBUS)"
        ));
        mem::ftruncate(rec, fd, SIZE)?;
        Ok(mem::mmap_shared(rec, fd, SIZE)?)
    })?;
    rec.note("the mapping keeps the object alive: the descriptor is no longer needed");
    file::close(rec, fd)?;
    Ok(map)
}

fn run_inner(rec: &mut Recorder, cfg: &ShmConfig, object: &mut Option<Object>) -> Result<()> {
    let map = map_object(rec, cfg, object)?;
    let forked = match process::fork(rec) {
        Ok(f) => f,
        Err(e) => {
            let _ = mem::munmap(rec, map);
            return Err(e.into());
        }
    };
    match forked {
        Forked::Child => child_exit(rec, |rec| writer(rec, map, &cfg.message, cfg.sync)),
        Forked::Parent { child } => {
            if cfg.sync {
                let side = wait_for_word(rec, &map).map(|()| read_message(&map));
                let got = match side {
                    Ok(got) => got,
                    Err(e) => {
                        let _ = mem::munmap(rec, map);
                        return wait::finish(rec, child, Err(e)).map(drop);
                    }
                };
                rec.message(format!(
                    "the parent read from the mapping: {} — no read() call: the child's stores are simply in the parent's memory",
                    printable(&got)
                ));
                rec.note(if cfg.memfd {
                    "the last mapping is gone, and no descriptor is open: the memfd's pages are freed"
                } else {
                    "the parent's mapping is gone; the object lives on while its name exists"
                });
                let unmapped = mem::munmap(rec, map);
                if let Some(o) = object.take() {
                    o.remove(rec);
                }
                let st = wait::finish(rec, child, unmapped.map_err(Error::from))?;
                expect_exit_0(st)?;
                check(&got, &cfg.message)?;
                rec.message(
                    "the bytes moved without any syscall: strace shows the futex calls, never the data (a pipe or socket copies every byte through write() and read())",
                );
                Ok(())
            } else {
                let early = read_message(&map);
                rec.message(early_look(&early, &cfg.message));
                let st = wait::finish(rec, child, Ok(()));
                let late = read_message(&map);
                let unmapped = mem::munmap(rec, map);
                expect_exit_0(st?)?;
                unmapped?;
                rec.message(format!(
                    "after wait4 the child has certainly finished: the mapping now holds {} — shared memory needs synchronisation (a futex, as without --no-sync, a semaphore, or at least the writer's exit)",
                    printable(&late)
                ));
                check(&late, &cfg.message)
            }
        }
    }
}

fn check(got: &[u8], want: &[u8]) -> Result<()> {
    if got != want {
        return Err(Error::protocol(format!(
            "the mapping held {:?}, not the message the child wrote",
            printable(got)
        )));
    }
    Ok(())
}

/// What the `--no-sync` reader saw when it looked at once.
fn early_look(seen: &[u8], want: &[u8]) -> String {
    let what = if seen.is_empty() {
        "nothing (0 bytes): the child has not written yet".to_string()
    } else if seen == want {
        format!(
            "the whole message, {} — by luck: the child happened to be done",
            printable(seen)
        )
    } else {
        format!(
            "a torn message, {} ({} of {} bytes): the child was half-way through",
            printable(seen),
            seen.len(),
            want.len()
        )
    };
    format!(
        "--no-sync: the parent looks at once, with nothing to tell it whether the child has written, and finds {what}"
    )
}

/// The message in the mapping: the bytes from [`MSG_AT`] up to a NUL.
fn read_message(map: &Mapping) -> Vec<u8> {
    map.bytes()[MSG_AT..]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .collect()
}

/// The reader's wait: FUTEX_WAIT while the word is still 0, each a call
/// the stop signals may interrupt, until [`WAIT_LIMIT`].
fn wait_for_word(rec: &mut Recorder, map: &Mapping) -> Result<()> {
    let word = map.word(0);
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut first = true;
    loop {
        if word.load(Ordering::Acquire) == WRITTEN {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(no_wake());
        }
        rec.waiting("the word is still 0: the parent sleeps until the child's FUTEX_WAKE");
        rec.note("woken by the child's FUTEX_WAKE: the word is 1, the message is in place");
        // The first wait asks for the whole limit (a round number to read);
        // a later one, after a spurious wake, for what is left of it.
        let left = if std::mem::take(&mut first) {
            WAIT_LIMIT
        } else {
            left
        };
        match signal::interruptible(rec, |rec| mem::futex_wait(rec, word, EMPTY, Some(left))) {
            Ok(()) => {}
            Err(e) if e.errno == Errno::EAGAIN => {}
            Err(e) if e.errno == Errno::ETIMEDOUT => return Err(no_wake()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn no_wake() -> Error {
    Error::protocol(format!(
        "no FUTEX_WAKE within {} s: the child did not write",
        WAIT_LIMIT.as_secs()
    ))
}

/// The child: dawdle, store the message (no syscall), then set the word
/// and wake the parent (unless `--no-sync`), unmap.
fn writer(rec: &mut Recorder, map: Mapping, msg: &[u8], sync: bool) -> Result<()> {
    rec.note(format!(
        "the child dawdles {} ms before writing, so the parent is seen {}",
        DAWDLE.as_millis(),
        if sync {
            "asleep in FUTEX_WAIT"
        } else {
            "looking too early"
        }
    ));
    if let Err(e) = wait::sleep(rec, DAWDLE) {
        let _ = mem::munmap(rec, map);
        return Err(e);
    }
    for (dst, &b) in map.bytes()[MSG_AT..].iter().zip(msg) {
        dst.store(b, Ordering::Relaxed);
    }
    rec.message(format!(
        "the child stored {} bytes at {:#x}: plain memory stores, no syscall — strace sees nothing here",
        msg.len(),
        map.addr() + MSG_AT
    ));
    if sync {
        // Release: the message's stores are visible to whoever sees the 1.
        map.word(0).store(WRITTEN, Ordering::Release);
        rec.note_err("the wake failed; the parent will give up after its timeout");
        let woke = mem::futex_wake(rec, map.word(0), 1);
        if let Ok(0) = woke {
            rec.message("nobody was asleep yet: the parent will find the word at 1 and not sleep");
        }
        if let Err(e) = woke {
            let _ = mem::munmap(rec, map);
            return Err(e.into());
        }
    }
    rec.note("the child's mapping is gone; the parent's stays");
    mem::munmap(rec, map)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_glibc_checks_them() {
        assert_eq!(check_name("/ipclab-x").expect("valid"), "ipclab-x");
        assert_eq!(check_name("ipclab-x").expect("valid"), "ipclab-x");
        for bad in ["", "/", "a/b", "..", ".", &"x".repeat(256)] {
            assert_eq!(check_name(bad).expect_err(bad).exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn messages_fit_the_page() {
        assert!(ShmConfig::new(&"m".repeat(MAX_MESSAGE), true, false, None).is_ok());
        assert!(ShmConfig::new(&"m".repeat(MAX_MESSAGE + 1), true, false, None).is_err());
        assert!(ShmConfig::new("", true, false, None).is_err());
    }

    #[test]
    fn the_early_look_says_what_it_found() {
        assert!(early_look(b"", b"hello").contains("nothing"));
        assert!(early_look(b"hel", b"hello").contains("torn"));
        assert!(early_look(b"hello", b"hello").contains("by luck"));
    }
}
