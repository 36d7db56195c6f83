//! pcap files (the format tcpdump's `-w` writes and Wireshark opens) as
//! bytes, on the pcap-file crate: a file header, then one record per frame
//! (16 bytes of time and lengths, then the frame). No I/O here: the lab
//! writes and reads the bytes with traced `write(2)` and `read(2)`.
//!
//! Written files use nanosecond time stamps (magic `0xa1b23c4d`), so the
//! kernel's stamp is kept whole; tcpdump, Wireshark and libpcap ≥ 1.5 read
//! them. Read files may be either resolution, either byte order, link type
//! Ethernet. A record is bounded before it is waited for: the reader never
//! holds more than one record past what it was fed.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use byteorder_slice::{BigEndian, LittleEndian};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter, RawPcapPacket};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use super::filter::SNAPLEN;
use super::ParseError;

/// The file header's length.
pub const HEADER_LEN: usize = 24;
/// A record header's length.
pub const RECORD_HEADER_LEN: usize = 16;
/// The largest frame a record may hold: libpcap's limit for Ethernet.
pub const MAX_RECORD: usize = SNAPLEN as usize;

fn perr(e: PcapError) -> ParseError {
    ParseError(format!("pcap: {e}"))
}

/// Bytes the crate's writer hands over, taken after each record.
#[derive(Debug, Clone, Default)]
struct Staged(Rc<RefCell<Vec<u8>>>);

impl Write for Staged {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A pcap file being written: [`PcapOut::new`] gives the file header's
/// bytes, [`PcapOut::record`] each frame's.
#[derive(Debug)]
pub struct PcapOut {
    writer: PcapWriter<Staged>,
    staged: Staged,
}

impl PcapOut {
    /// The header of a file of Ethernet frames, nanosecond stamps, this
    /// machine's byte order, snapshot length 262144 (tcpdump's).
    pub fn new() -> Result<(PcapOut, Vec<u8>), ParseError> {
        let staged = Staged::default();
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let writer = PcapWriter::with_header(staged.clone(), header).map_err(perr)?;
        let bytes = std::mem::take(&mut *staged.0.borrow_mut());
        Ok((PcapOut { writer, staged }, bytes))
    }

    /// One record: `data` as captured (at most [`MAX_RECORD`] bytes are
    /// kept), `wire_len` bytes long on the wire, stamped `stamp` since the epoch.
    pub fn record(
        &mut self,
        stamp: Duration,
        data: &[u8],
        wire_len: usize,
    ) -> Result<Vec<u8>, ParseError> {
        let data = &data[..data.len().min(MAX_RECORD)];
        let orig = u32::try_from(wire_len.max(data.len())).unwrap_or(u32::MAX);
        self.writer
            .write_packet(&PcapPacket::new(stamp, orig, data))
            .map_err(perr)?;
        Ok(std::mem::take(&mut *self.staged.0.borrow_mut()))
    }
}

/// A frame read back from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stamp: Duration,
    pub wire_len: usize,
    pub data: Vec<u8>,
}

/// A pcap file read in chunks: [`PcapIn::feed`] the bytes as they are
/// read, take records with [`PcapIn::next_record`].
#[derive(Debug, Default)]
pub struct PcapIn {
    header: Option<PcapHeader>,
    pending: Vec<u8>,
    /// Records taken so far (for error messages).
    pub count: u64,
}

impl PcapIn {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The file's header, once read.
    pub fn header(&self) -> Option<&PcapHeader> {
        self.header.as_ref()
    }

    /// How many more bytes the next step needs at least (0: a record is ready).
    pub fn wants(&self) -> usize {
        let have = self.pending.len();
        match &self.header {
            None => HEADER_LEN.saturating_sub(have),
            Some(h) if have >= RECORD_HEADER_LEN => {
                let incl = self.incl_len(h);
                (RECORD_HEADER_LEN + incl).saturating_sub(have)
            }
            Some(_) => RECORD_HEADER_LEN - have,
        }
    }

    fn incl_len(&self, h: &PcapHeader) -> usize {
        let b = [
            self.pending[8],
            self.pending[9],
            self.pending[10],
            self.pending[11],
        ];
        (match h.endianness {
            Endianness::Big => u32::from_be_bytes(b),
            Endianness::Little => u32::from_le_bytes(b),
        }) as usize
    }

    /// The next record if a whole one has been fed; `Ok(None)` when more
    /// bytes are needed (or, at end of file, when [`PcapIn::leftover`] is 0).
    ///
    /// # Errors
    /// Not a pcap file, a link type other than Ethernet, a record larger
    /// than [`MAX_RECORD`].
    pub fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        if self.header.is_none() {
            if self.pending.len() < HEADER_LEN {
                return Ok(None);
            }
            if self.pending[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                return Err(ParseError(
                    "a pcapng file: ipclab reads pcap, as tcpdump -w writes it (convert with `editcap -F pcap IN OUT` or `tcpdump -r IN -w OUT`)".into(),
                ));
            }
            let (_, h) = PcapHeader::from_slice(&self.pending).map_err(|_| {
                ParseError(format!(
                    "not a pcap file: it starts with {:02x?}, not a pcap magic number (a1b2c3d4 or a1b23c4d, either byte order)",
                    &self.pending[..4]
                ))
            })?;
            if h.datalink != DataLink::ETHERNET {
                return Err(ParseError(format!(
                    "link type {:?} ({}): ipclab decodes Ethernet frames (link type 1) only",
                    h.datalink,
                    u32::from(h.datalink)
                )));
            }
            self.pending.drain(..HEADER_LEN);
            self.header = Some(h);
        }
        let h = self.header.expect("set above");
        if self.pending.len() < RECORD_HEADER_LEN {
            return Ok(None);
        }
        let incl = self.incl_len(&h);
        if incl > MAX_RECORD {
            return Err(ParseError(format!(
                "record {} says it holds {incl} bytes, more than {MAX_RECORD} (the most an Ethernet pcap holds): the file is damaged",
                self.count + 1
            )));
        }
        if self.pending.len() < RECORD_HEADER_LEN + incl {
            return Ok(None);
        }
        let raw = match h.endianness {
            Endianness::Big => RawPcapPacket::from_slice::<BigEndian>(&self.pending),
            Endianness::Little => RawPcapPacket::from_slice::<LittleEndian>(&self.pending),
        };
        let raw = raw.map_err(perr)?.1;
        let nanos = match h.ts_resolution {
            TsResolution::MicroSecond => raw.ts_frac.saturating_mul(1000),
            TsResolution::NanoSecond => raw.ts_frac,
        };
        let rec = Record {
            stamp: Duration::new(u64::from(raw.ts_sec), nanos.min(999_999_999)),
            wire_len: (raw.orig_len as usize).max(incl),
            data: raw.data.to_vec(),
        };
        self.pending.drain(..RECORD_HEADER_LEN + incl);
        self.count += 1;
        Ok(Some(rec))
    }

    /// Bytes fed but not yet taken: at end of file, a cut-off record.
    pub fn leftover(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_read_back_in_any_chunks() {
        let (mut out, mut file) = PcapOut::new().expect("a header");
        assert_eq!(file.len(), HEADER_LEN);
        assert_eq!(&file[..4], &0xa1b2_3c4du32.to_ne_bytes());
        let t1 = Duration::new(1_700_000_000, 123_456_789);
        file.extend(out.record(t1, b"frame one", 9).expect("a record"));
        file.extend(out.record(t1 * 2, &[7; 70], 1500).expect("a record"));
        for chunk in [1, 7, 16, 100, 4096] {
            let mut r = PcapIn::default();
            let mut got = Vec::new();
            for part in file.chunks(chunk) {
                r.feed(part);
                while let Some(rec) = r.next_record().expect("valid") {
                    got.push(rec);
                }
            }
            assert_eq!(r.leftover(), 0);
            assert_eq!(got.len(), 2, "chunks of {chunk}");
            assert_eq!(got[0].stamp, t1);
            assert_eq!(got[0].data, b"frame one");
            assert_eq!(got[1].wire_len, 1500);
            assert_eq!(got[1].data.len(), 70);
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let mut r = PcapIn::default();
        r.feed(&[0x0a, 0x0d, 0x0d, 0x0a]);
        r.feed(&[0; 20]);
        assert!(r.next_record().expect_err("pcapng").0.contains("pcapng"));
        let mut r = PcapIn::default();
        r.feed(b"GIF89a this is not a capture file");
        assert!(r
            .next_record()
            .expect_err("magic")
            .0
            .contains("not a pcap file"));
        // A record that claims 1 GiB is refused before anything waits for it.
        let (mut out, mut file) = PcapOut::new().expect("a header");
        let mut rec = out.record(Duration::ZERO, b"x", 1).expect("a record");
        rec[8..12].copy_from_slice(&(1u32 << 30).to_ne_bytes());
        file.extend(rec);
        let mut r = PcapIn::default();
        r.feed(&file);
        assert!(r
            .next_record()
            .expect_err("too big")
            .0
            .contains("more than 262144"));
        // Another link type.
        let mut h = file[..HEADER_LEN].to_vec();
        h[20..24].copy_from_slice(&101u32.to_ne_bytes());
        let mut r = PcapIn::default();
        r.feed(&h);
        assert!(r.next_record().expect_err("raw ip").0.contains("Ethernet"));
    }
}
