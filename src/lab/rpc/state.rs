//! The server's durable state (`--state FILE`): INCR's counter and, for
//! exactly-once, the completion records. Saved before a reply leaves —
//! a new file (`FILE.PID.tmp`, O_EXCL), write, fsync, rename over FILE,
//! close, fsync of the directory — so a crash at any moment leaves either
//! the old state or the new one, never half of one; loaded at start. A
//! failed save removes the new file (only if it is still the one made).
//!
//! The file says how long it is and carries a CRC-32 of its body: a
//! truncated or corrupted file is refused at start with one line (exit 1),
//! never half-loaded. Layout (XDR words): the magic `IPCLABST`, format 1,
//! the body's length, its CRC-32, then the body: the counter, the number
//! of records, and per record the client, xid, stamp and result.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{Error, Result};
use crate::lab::Made;
use crate::packet::xdr::{decode_with, Reader, Writer, XdrError};
use crate::sys::{file, fs};
use crate::trace::Recorder;

const MAGIC: &[u8; 8] = b"IPCLABST";
const FORMAT: u32 = 1;
/// The header: magic, format, length, checksum.
const HEADER: usize = 20;
/// Largest state file read (bounds what a bad file can make us allocate).
pub const MAX_FILE: usize = 1 << 20;
/// Longest client name kept.
pub const MAX_CLIENT: usize = 300;
/// Most records a file may hold.
pub const MAX_RECORDS: usize = 2048;

/// What INCR's exactly-once server remembers of a call it completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// `machinename/uid` of an AUTH_SYS caller, or its address.
    pub client: String,
    pub xid: u32,
    /// The caller's timestamp (0 for AUTH_NONE).
    pub stamp: u32,
    pub result: i32,
}

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub counter: i32,
    pub records: Vec<Completion>,
}

/// CRC-32 (IEEE 802.3, as zlib and cksum -a crc32b compute it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

impl State {
    /// The file's bytes.
    ///
    /// # Errors
    /// A client name over [`MAX_CLIENT`] bytes.
    pub fn encode(&self) -> std::result::Result<Vec<u8>, XdrError> {
        let mut body = Writer::new();
        body.i32("counter", self.counter);
        body.array("records", &self.records, MAX_RECORDS, |w, l, r| {
            w.string(&format!("{l}.client"), &r.client, MAX_CLIENT)?;
            w.u32(&format!("{l}.xid"), r.xid);
            w.u32(&format!("{l}.stamp"), r.stamp);
            w.i32(&format!("{l}.result"), r.result);
            Ok(())
        })?;
        let body = body.into_bytes();
        let mut w = Writer::new();
        w.opaque_fixed("magic", MAGIC);
        w.u32("format", FORMAT);
        w.u32("length", body.len() as u32);
        w.u32("crc32", crc32(&body));
        w.raw("body", &body);
        Ok(w.into_bytes())
    }

    /// Reads the file's bytes, checking everything.
    ///
    /// # Errors
    /// Why the bytes are not a whole, intact state file.
    pub fn decode(bytes: &[u8]) -> std::result::Result<State, String> {
        if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            return Err("does not start with IPCLABST: not an ipclab state file".into());
        }
        if bytes.len() < HEADER {
            return Err(format!(
                "{} bytes, shorter than the {HEADER}-byte header (truncated)",
                bytes.len()
            ));
        }
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if word(8) != FORMAT {
            return Err(format!(
                "format {} (this ipclab reads format {FORMAT})",
                word(8)
            ));
        }
        let (len, sum) = (word(12) as usize, word(16));
        let body = &bytes[HEADER..];
        if body.len() != len {
            return Err(format!(
                "the header announces {len} bytes of body and {} are there ({})",
                body.len(),
                if body.len() < len {
                    "truncated"
                } else {
                    "bytes added"
                }
            ));
        }
        if crc32(body) != sum {
            return Err(format!(
                "checksum {:#010x} does not match the body's {:#010x} (corrupted)",
                sum,
                crc32(body)
            ));
        }
        let read = |r: &mut Reader<'_>| -> std::result::Result<State, XdrError> {
            let counter = r.i32("counter")?;
            let records = r.array("records", MAX_RECORDS, 16, |r, l| {
                Ok(Completion {
                    client: r.string(&format!("{l}.client"), MAX_CLIENT)?.to_string(),
                    xid: r.u32(&format!("{l}.xid"))?,
                    stamp: r.u32(&format!("{l}.stamp"))?,
                    result: r.i32(&format!("{l}.result"))?,
                })
            })?;
            Ok(State { counter, records })
        };
        decode_with(body, false, read)
            .map(|(s, _)| s)
            .map_err(|e| format!("the body does not decode: {e}"))
    }
}

/// A state file in use: where it is, the name its next version is written
/// under, and the directory (held open to sync renames into it).
pub struct StateFile {
    pub path: PathBuf,
    tmp: PathBuf,
    dir: OwnedFd,
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::protocol(format!(
        "state file {}: {why}; refusing to start (nothing was loaded; move the file away to start from zero)",
        path.display()
    ))
}

impl StateFile {
    /// Opens the directory of `path` and loads the state, if there is a
    /// file yet. None: no file (a first start).
    ///
    /// # Errors
    /// A file that is not a regular file, too big, truncated or corrupted.
    pub fn open(rec: &mut Recorder, path: &Path) -> Result<(StateFile, Option<State>)> {
        let state = load(rec, path)?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        rec.note("the directory stays open: after each rename, an fsync of it makes the new name durable");
        let dir = file::openat(
            rec,
            &parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            None,
        )?;
        let name = path
            .file_name()
            .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
        let tmp = parent.join(format!("{name}.{}.tmp", rec.pid()));
        Ok((
            StateFile {
                path: path.to_path_buf(),
                tmp,
                dir,
            },
            state,
        ))
    }

    /// Makes `state` durable: write a new file, fsync it, rename it over
    /// the old one, fsync the directory. Any failure removes the new file
    /// (this run made it) and is returned: the reply must not leave.
    pub fn save(&mut self, rec: &mut Recorder, state: &State) -> Result<()> {
        let bytes = state
            .encode()
            .map_err(|e| Error::protocol(format!("cannot encode the state: {e}")))?;
        rec.note(
            "a new file next to the state file; O_EXCL: never overwrite something already there",
        );
        let fd = fs::openat_create(
            rec,
            &self.tmp,
            OFlag::O_WRONLY | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            0o600,
        )?;
        // The descriptor stays open until the new file has its final name:
        // should a step fail, it says which file this run made (fstat), and
        // only that file is removed (see `Made`).
        let done = (|| -> Result<()> {
            let mut off = 0;
            while off < bytes.len() {
                rec.note("the new state is in the page cache: a power cut would still lose it");
                off += file::write(rec, fd.as_fd(), &bytes[off..])?;
            }
            fs::fsync(rec, fd.as_fd())?;
            rec.note("the new state replaces the old in one step: a crash leaves one or the other, never half");
            fs::rename(rec, &self.tmp, &self.path)?;
            Ok(())
        })();
        if let Err(e) = done {
            rec.note("which file this run made, from its descriptor: only that one is removed");
            if let Ok(st) = file::fstat(rec, fd.as_fd()) {
                let made = Made {
                    path: self.tmp.clone(),
                    dev: st.st_dev,
                    ino: st.st_ino,
                    mode: st.st_mode,
                };
                made.remove(
                    rec,
                    false,
                    "the unfinished new state file is removed; the old state stays",
                );
            }
            let _ = file::close(rec, fd);
            return Err(e);
        }
        file::close(rec, fd)?;
        rec.note(
            "the directory entry is on the device too: the state survives a crash from here on",
        );
        fs::fsync(rec, self.dir.as_fd())?;
        Ok(())
    }

    /// Closes the directory.
    pub fn close(self, rec: &mut Recorder) -> Result<()> {
        file::close(rec, self.dir)?;
        Ok(())
    }
}

/// Reads `path` whole (bounded) and decodes it. None when there is no file.
fn load(rec: &mut Recorder, path: &Path) -> Result<Option<State>> {
    rec.note("the state file of an earlier run: read it whole before serving anything");
    let fd = match file::openat(
        rec,
        path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) if e.errno == Errno::ENOENT => {
            rec.message(format!(
                "no state file at {} yet: a first start, from zero",
                path.display()
            ));
            return Ok(None);
        }
        Err(e) if e.errno == Errno::ELOOP => {
            return Err(refuse(
                path,
                "is a symbolic link, and ipclab never follows one",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let st = match file::fstat(rec, fd.as_fd()) {
        Ok(st) => st,
        Err(e) => {
            let _ = file::close(rec, fd);
            return Err(e.into());
        }
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size as u64 > MAX_FILE as u64 {
        let _ = file::close(rec, fd);
        return Err(refuse(
            path,
            format!(
                "is {} of {} bytes, not a state file (a regular file of at most {MAX_FILE} bytes)",
                file::kind_text(st.st_mode),
                st.st_size
            ),
        ));
    }
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = loop {
        match file::read(rec, fd.as_fd(), &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) if bytes.len() + n > MAX_FILE => {
                break Err(refuse(path, "grew past the size limit while read"))
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e.into()),
        }
    };
    file::close(rec, fd)?;
    read?;
    match State::decode(&bytes) {
        Ok(s) => Ok(Some(s)),
        Err(why) => Err(refuse(path, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            counter: 7,
            records: vec![Completion {
                client: "ipclab-42/uid 0".into(),
                xid: 0x1234,
                stamp: 1_700_000_000,
                result: 7,
            }],
        }
    }

    #[test]
    fn a_failed_save_removes_its_new_file_and_keeps_the_old_state() {
        let mut rec = Recorder::new(crate::trace::TraceOptions {
            json: true,
            quiet: true,
            fds: false,
            step: false,
            color: false,
            ..Default::default()
        });
        let dir = std::env::temp_dir().join(format!("ipclab-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.state");
        // (An absent file would be reported with a message, which a unit
        // test's recorder would print.)
        std::fs::write(&path, State::default().encode().expect("fits")).expect("write");
        let (mut f, loaded) = StateFile::open(&mut rec, &path).expect("opens");
        assert_eq!(loaded, Some(State::default()));
        f.save(&mut rec, &sample()).expect("saved");
        let (_, back) = StateFile::open(&mut rec, &path).expect("loads");
        assert_eq!(back, Some(sample()));
        // A directory where the file should go: rename fails (EISDIR).
        std::fs::remove_file(&path).expect("rm");
        std::fs::create_dir(&path).expect("mkdir");
        assert!(f.save(&mut rec, &State::default()).is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            [std::ffi::OsString::from("s.state")],
            "no temp file left"
        );
        f.close(&mut rec).expect("close");
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_state_round_trips() {
        let s = sample();
        let b = s.encode().expect("fits");
        assert_eq!(State::decode(&b), Ok(s));
        assert_eq!(
            State::decode(&State::default().encode().expect("fits")),
            Ok(State::default())
        );
    }

    #[test]
    fn truncated_corrupted_or_foreign_files_are_refused() {
        let b = sample().encode().expect("fits");
        for cut in [0, 5, HEADER, b.len() - 1] {
            let e = State::decode(&b[..cut]).expect_err("truncated");
            assert!(
                e.contains("truncated") || e.contains("shorter"),
                "{cut}: {e}"
            );
        }
        let mut flipped = b.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        assert!(State::decode(&flipped)
            .expect_err("flip")
            .contains("corrupted"));
        let mut longer = b.clone();
        longer.push(0);
        assert!(State::decode(&longer)
            .expect_err("longer")
            .contains("added"));
        assert!(State::decode(b"hello, world, this is text")
            .expect_err("text")
            .contains("IPCLABST"));
        // A body that checks out but does not decode: a record count of 2^31.
        let mut body = Writer::new();
        body.i32("counter", 1);
        body.u32("records count", 0x8000_0000);
        let body = body.into_bytes();
        let mut w = Writer::new();
        w.opaque_fixed("magic", MAGIC);
        w.u32("format", FORMAT);
        w.u32("length", body.len() as u32);
        w.u32("crc32", crc32(&body));
        w.raw("body", &body);
        assert!(State::decode(w.bytes())
            .expect_err("count")
            .contains("does not decode"));
    }
}
