//! pcap files: `-w` writes one, `-r` reads one back.
//!
//! `-w FILE`: openat(O_WRONLY|O_CREAT|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC,
//! 0600) → newfstatat → [ftruncate(0)] → write(header) → write(record) per
//! frame. Like tcpdump it replaces an existing regular file, and unlike
//! tcpdump (fopen "w": O_TRUNC, 0666) it never follows a symbolic link
//! (O_NOFOLLOW: ELOOP), never empties or writes into anything but a regular
//! file (it truncates only after fstat says regular; O_NONBLOCK keeps a
//! FIFO from blocking the open), and creates the file readable by its
//! owner only (a capture can hold other users' traffic; an existing file
//! keeps its mode). One write per frame (as
//! `tcpdump -U`), so a Ctrl-C loses nothing. The file is the user's: it
//! stays.
//!
//! `-r FILE`: openat(O_RDONLY|O_CLOEXEC) → read … → close, 64 KiB a read;
//! the filter runs in user space ([`crate::packet::filter::interp`]).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;

use super::SniffConfig;
use crate::error::{Error, Result};
use crate::packet::frame::{dump, Decoder};
use crate::packet::pcap::{PcapIn, PcapOut};
use crate::sys::file;
use crate::trace::names::printable;
use crate::trace::Recorder;

fn shown(p: &Path) -> String {
    printable(p.as_os_str().as_encoded_bytes())
}

/// Writes all of `bytes`, a traced `write(2)` for each part the kernel takes.
fn write_all(rec: &mut Recorder, fd: std::os::fd::BorrowedFd<'_>, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        let n = file::write(rec, fd, bytes)?;
        if n == 0 {
            return Err(Error::protocol(
                "write(2) wrote nothing: the file takes no more",
            ));
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// An open `-w` file.
pub struct PcapFile {
    fd: OwnedFd,
    pcap: PcapOut,
    name: String,
    frames: u64,
}

impl PcapFile {
    /// Opens (creating or emptying) `path` and writes the pcap header.
    pub fn create(rec: &mut Recorder, path: &Path) -> Result<PcapFile> {
        let name = shown(path);
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        rec.note(format!(
            "the pcap file -w names: created if absent (mode 0600: a capture can hold other users' traffic); never through a symbolic link (O_NOFOLLOW) and not yet emptied: {name} is checked first"
        ));
        rec.note_err(format!("-w {name}: cannot open it for writing"));
        let fd = file::openat_mode(rec, path, flags, 0o600)?;
        let (fd, pcap) = crate::lab::set_up(rec, fd, |rec, fd| {
            let st = file::fstat(rec, fd)?;
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Error::protocol(format!(
                    "-w {name}: it is {}, not a regular file; ipclab writes a capture only to a regular file it may replace",
                    file::kind_text(st.st_mode)
                )));
            }
            if st.st_size > 0 {
                rec.note(format!(
                    "{name} held {} bytes: replaced, as tcpdump -w replaces a file",
                    st.st_size
                ));
                file::ftruncate(rec, fd, 0)?;
            }
            let (pcap, header) = PcapOut::new().map_err(|e| Error::Protocol(e.0))?;
            rec.note("the pcap file header: magic a1b23c4d (nanosecond stamps), version 2.4, snapshot length 262144, link type 1 (Ethernet)");
            write_all(rec, fd, &header)?;
            Ok(pcap)
        })?;
        Ok(PcapFile {
            fd,
            pcap,
            name,
            frames: 0,
        })
    }

    /// Writes one record: the frame as captured, with its time stamp.
    pub fn frame(
        &mut self,
        rec: &mut Recorder,
        stamp: Duration,
        data: &[u8],
        wire_len: usize,
    ) -> Result<()> {
        let bytes = self
            .pcap
            .record(stamp, data, wire_len)
            .map_err(|e| Error::Protocol(e.0))?;
        rec.note(format!(
            "record {}: 16 bytes of time stamp ({}.{:09}) and lengths, then the {} bytes captured",
            self.frames + 1,
            stamp.as_secs(),
            stamp.subsec_nanos(),
            data.len()
        ));
        write_all(rec, self.fd.as_fd(), &bytes)?;
        self.frames += 1;
        Ok(())
    }

    pub fn close(self, rec: &mut Recorder) -> Result<()> {
        rec.note(format!(
            "{} holds {}; it stays (`tcpdump -r {}` or Wireshark opens it)",
            self.name,
            if self.frames == 1 {
                "1 frame".to_string()
            } else {
                format!("{} frames", self.frames)
            },
            self.name
        ));
        file::close(rec, self.fd)?;
        Ok(())
    }
}

/// Bytes asked for by each `read(2)` of `-r`.
const CHUNK: usize = 65536;

/// `-r`: reads `path` (`-`: standard input) through the decoder, the
/// filter in user space; writes the frames it keeps to `-w`, if given.
pub fn read(rec: &mut Recorder, path: &Path, cfg: &SniffConfig) -> Result<()> {
    let name = shown(path);
    let stdin = path.as_os_str() == "-";
    let owned = if stdin {
        None
    } else {
        rec.note("the pcap file to read: no socket and no privilege needed");
        Some(file::openat(
            rec,
            path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            None,
        )?)
    };
    let result = read_from(rec, owned.as_ref().map(|f| f.as_fd()), &name, cfg);
    if let Some(fd) = owned {
        let _ = file::close(rec, fd);
    }
    result
}

fn read_from(
    rec: &mut Recorder,
    fd: Option<std::os::fd::BorrowedFd<'_>>,
    name: &str,
    cfg: &SniffConfig,
) -> Result<()> {
    let stdin = std::io::stdin();
    let fd = fd.unwrap_or_else(|| stdin.as_fd());
    // A pipe or a FIFO may keep a read waiting: wait in ppoll, where
    // Ctrl-C gets in; a regular file never waits.
    let regular = file::fstat(rec, fd)?.st_mode & libc::S_IFMT == libc::S_IFREG;
    let mut out = match &cfg.write {
        Some(p) => Some(PcapFile::create(rec, p)?),
        None => None,
    };
    let result = frames(rec, fd, regular, name, cfg, out.as_mut());
    let closed = out.map_or(Ok(()), |f| f.close(rec));
    result?;
    closed
}

fn frames(
    rec: &mut Recorder,
    fd: std::os::fd::BorrowedFd<'_>,
    regular: bool,
    name: &str,
    cfg: &SniffConfig,
    mut out: Option<&mut PcapFile>,
) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut pcap = PcapIn::default();
    let mut decoder = Decoder::new(cfg.show.style);
    let (mut kept, mut eof) = (0u64, false);
    let bad = |e: crate::packet::ParseError| Error::Protocol(format!("-r {name}: {}", e.0));
    while !eof && cfg.count.is_none_or(|c| kept < u64::from(c)) {
        if !regular {
            rec.waiting(format!("waiting for bytes of {name}"));
            crate::lab::wait::readable(rec, fd, None)?;
        }
        rec.note(format!(
            "up to 64 KiB of {name}; whole records are taken out as they complete (0 bytes: the end of the file)"
        ));
        let n = file::read(rec, fd, &mut buf)?;
        eof = n == 0;
        pcap.feed(&buf[..n]);
        while let Some(r) = pcap.next_record().map_err(bad)? {
            if cfg
                .filter
                .as_ref()
                .is_some_and(|f| !f.accepts(&r.data, r.wire_len))
            {
                continue;
            }
            kept += 1;
            let f = decoder.decode(&r.data, r.wire_len);
            rec.message(format!(
                "{} {}",
                dump::clock(r.stamp, cfg.show.utc_offset),
                f.line
            ));
            for l in dump::payload_lines(cfg.show.payload, &r.data, f.net) {
                rec.message(l);
            }
            if let Some(o) = out.as_deref_mut() {
                o.frame(rec, r.stamp, &r.data, r.wire_len)?;
            }
            if cfg.count.is_some_and(|c| kept >= u64::from(c)) {
                break;
            }
        }
    }
    let read = pcap.count;
    if eof && pcap.header().is_none() {
        return Err(Error::protocol(format!(
            "-r {name}: {} bytes, too short for a pcap file header (24 bytes)",
            pcap.leftover()
        )));
    }
    if eof && pcap.leftover() > 0 {
        return Err(Error::protocol(format!(
            "-r {name}: the file ends inside record {} ({} bytes of it): cut short, after {read} whole records",
            read + 1,
            pcap.leftover()
        )));
    }
    rec.message(match &cfg.filter {
        Some(f) => format!(
            "{kept} of {read} packets read from {name} matched `{}`",
            f.text
        ),
        None => format!("{read} packets read from {name}"),
    });
    Ok(())
}
