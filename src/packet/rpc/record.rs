//! Record marking (RFC 5531 §11): on a byte stream (TCP) each message is
//! a record of one or more fragments, each behind a 4-byte mark whose top
//! bit says "last fragment" and whose other 31 bits give its length.
//! UDP needs none of this: a datagram is a message.
//!
//! [`RecordReader`] puts records back together from whatever chunks
//! `read(2)` returns. A mark is checked the moment its 4 bytes are in:
//! a fragment that would take the record past the maximum is refused then,
//! before a byte of it is stored, so a peer announcing 2 GiB costs us 4
//! bytes. Data is stored only as it arrives, so memory stays under the
//! maximum record plus a bounded list of fragment lengths.

use std::fmt;

use crate::packet::xdr::Span;

/// The mark's "last fragment" bit.
pub const LAST_FRAGMENT: u32 = 1 << 31;
/// The longest fragment 31 bits can announce.
pub const MAX_FRAGMENT: usize = (1 << 31) - 1;
/// Records longer than this are refused unless the reader is told otherwise.
pub const DEFAULT_MAX_RECORD: usize = 1 << 20;
/// Fragments one record may have by default: empty fragments cost no data,
/// so without a count a peer could make the length list grow for ever.
pub const DEFAULT_MAX_FRAGMENTS: usize = 1024;
/// Label of a record mark's span.
pub const MARK_LABEL: &str = "record mark";

/// A stream that broke the record-marking rules; close it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// A mark that would make the record `len` bytes, over `max`.
    TooLong { len: u64, max: usize },
    /// More fragments in one record than `max`.
    TooManyFragments { max: usize },
    /// Fragment lengths given to [`encode_fragments`] that do not add up
    /// to the body, or one over [`MAX_FRAGMENT`].
    BadFragments,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::TooLong { len, max } => {
                write!(
                    f,
                    "record mark announces {len} bytes, over the maximum {max}"
                )
            }
            RecordError::TooManyFragments { max } => {
                write!(f, "record has more than {max} fragments")
            }
            RecordError::BadFragments => f.write_str("fragment lengths do not match the body"),
        }
    }
}

impl std::error::Error for RecordError {}

fn mark(len: usize, last: bool) -> [u8; 4] {
    let len = u32::try_from(len).expect("fragment lengths are checked against MAX_FRAGMENT");
    (len | if last { LAST_FRAGMENT } else { 0 }).to_be_bytes()
}

/// Lengths of the fragments that carry `len` bytes, each at most
/// `max_fragment` (taken as 1 ..= [`MAX_FRAGMENT`]). An empty message is
/// one empty fragment.
pub fn fragment_lens(len: usize, max_fragment: usize) -> Vec<usize> {
    let max = max_fragment.clamp(1, MAX_FRAGMENT);
    if len == 0 {
        return vec![0];
    }
    let mut lens = vec![max; len / max];
    if len % max != 0 {
        lens.push(len % max);
    }
    lens
}

/// The record carrying `body` in fragments of at most `max_fragment` bytes.
pub fn encode(body: &[u8], max_fragment: usize) -> Vec<u8> {
    encode_fragments(body, &fragment_lens(body.len(), max_fragment))
        .expect("fragment_lens adds up to the body")
}

/// The record carrying `body` in fragments of the given lengths (those a
/// [`Record`] arrived in, to show it as it was on the wire).
///
/// # Errors
/// `BadFragments` when the lengths do not add up to `body.len()`, there
/// are none, or one is over [`MAX_FRAGMENT`].
pub fn encode_fragments(body: &[u8], lens: &[usize]) -> Result<Vec<u8>, RecordError> {
    let total = lens.iter().try_fold(0usize, |sum, &l| sum.checked_add(l));
    if lens.is_empty() || total != Some(body.len()) || lens.iter().any(|&l| l > MAX_FRAGMENT) {
        return Err(RecordError::BadFragments);
    }
    let mut out = Vec::with_capacity(body.len() + 4 * lens.len());
    let mut at = 0;
    for (i, &len) in lens.iter().enumerate() {
        out.extend_from_slice(&mark(len, i + 1 == lens.len()));
        out.extend_from_slice(&body[at..at + len]);
        at += len;
    }
    Ok(out)
}

/// The spans of a message, moved to where they lie in its record, with a
/// [`MARK_LABEL`] span for each mark (value `last fragment, 84 bytes`). A
/// field that a mark cuts in two gets a span on each side.
pub fn frame_spans(spans: &[Span], lens: &[usize]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &len) in lens.iter().enumerate() {
        let last = i + 1 == lens.len();
        let wire = start + 4 * i;
        out.push(Span {
            offset: wire,
            len: 4,
            label: MARK_LABEL.to_owned(),
            value: format!("{}fragment, {len} bytes", if last { "last " } else { "" }),
        });
        let end = start + len;
        for s in spans {
            let (a, b) = (s.offset.max(start), (s.offset + s.len).min(end));
            if a < b {
                out.push(Span {
                    offset: a + 4 * (i + 1),
                    len: b - a,
                    label: s.label.clone(),
                    value: if a == s.offset {
                        s.value.clone()
                    } else {
                        String::new()
                    },
                });
            }
        }
        start = end;
    }
    out
}

/// The record carrying `body` in fragments of at most `max_fragment`
/// bytes, with `spans` (the message's) moved behind the marks: what the
/// lab sends and dumps in one go.
pub fn frame(body: &[u8], spans: &[Span], max_fragment: usize) -> (Vec<u8>, Vec<Span>) {
    let lens = fragment_lens(body.len(), max_fragment);
    let wire = encode_fragments(body, &lens).expect("fragment_lens adds up to the body");
    (wire, frame_spans(spans, &lens))
}

/// One record, put back together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The message: the fragments' data, marks removed.
    pub data: Vec<u8>,
    /// The length of each fragment it came in.
    pub fragments: Vec<usize>,
}

impl Record {
    /// The record as it was on the wire, marks included.
    pub fn wire(&self) -> Vec<u8> {
        encode_fragments(&self.data, &self.fragments)
            .expect("a received record's fragments add up to its data")
    }
}

/// Reassembles records from a byte stream fed in chunks of any size.
#[derive(Debug, Clone)]
pub struct RecordReader {
    max_record: usize,
    max_fragments: usize,
    mark: [u8; 4],
    mark_len: usize,
    /// Bytes of the current fragment still to come, once its mark is in.
    in_fragment: Option<usize>,
    last: bool,
    current: Record,
    failed: Option<RecordError>,
}

impl Default for RecordReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordReader {
    /// A reader refusing records over 1 MiB or 1024 fragments.
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_RECORD, DEFAULT_MAX_FRAGMENTS)
    }

    pub fn with_limits(max_record: usize, max_fragments: usize) -> Self {
        RecordReader {
            max_record,
            max_fragments,
            mark: [0; 4],
            mark_len: 0,
            in_fragment: None,
            last: false,
            current: Record::default(),
            failed: None,
        }
    }

    /// Bytes held for the record not yet complete (and a partial mark).
    pub fn buffered(&self) -> usize {
        self.current.data.len() + self.mark_len
    }

    /// Whether the stream stopped inside a record: at end of file, the
    /// peer sent a record it did not finish.
    pub fn is_mid_record(&self) -> bool {
        self.mark_len > 0 || self.in_fragment.is_some() || !self.current.fragments.is_empty()
    }

    /// The error that broke the stream, once one has.
    pub fn error(&self) -> Option<&RecordError> {
        self.failed.as_ref()
    }

    fn fail(&mut self, e: RecordError) -> RecordError {
        self.current = Record::default();
        self.failed = Some(e.clone());
        e
    }

    /// Takes bytes from `input` up to the end of the next record at most:
    /// returns how many it took and the record if one is complete. Call
    /// again with the rest; nothing is lost before an error surfaces.
    ///
    /// # Errors
    /// A mark over the limits; from then on every call returns that error.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Record>), RecordError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut used = 0;
        while used < input.len() {
            let left = match self.in_fragment {
                Some(left) => left,
                None => {
                    let n = (4 - self.mark_len).min(input.len() - used);
                    self.mark[self.mark_len..self.mark_len + n]
                        .copy_from_slice(&input[used..used + n]);
                    self.mark_len += n;
                    used += n;
                    if self.mark_len < 4 {
                        break;
                    }
                    self.mark_len = 0;
                    self.start_fragment()?
                }
            };
            let n = left.min(input.len() - used);
            self.current.data.extend_from_slice(&input[used..used + n]);
            used += n;
            if left > n {
                self.in_fragment = Some(left - n);
                break;
            }
            self.in_fragment = None;
            if self.last {
                return Ok((used, Some(std::mem::take(&mut self.current))));
            }
        }
        Ok((used, None))
    }

    /// Checks a complete mark and starts its fragment; returns its length.
    fn start_fragment(&mut self) -> Result<usize, RecordError> {
        let m = u32::from_be_bytes(self.mark);
        let len = (m & !LAST_FRAGMENT) as usize;
        if self.current.fragments.len() >= self.max_fragments {
            let max = self.max_fragments;
            return Err(self.fail(RecordError::TooManyFragments { max }));
        }
        let total = self.current.data.len() as u64 + len as u64;
        if total > self.max_record as u64 {
            let max = self.max_record;
            return Err(self.fail(RecordError::TooLong { len: total, max }));
        }
        self.current.fragments.push(len);
        self.last = m & LAST_FRAGMENT != 0;
        self.in_fragment = Some(len);
        Ok(len)
    }

    /// Every record `input` completes, in order.
    ///
    /// # Errors
    /// As [`RecordReader::push`]; records this chunk completed before the
    /// bad mark are dropped with it (use `push` to keep them).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Vec<Record>, RecordError> {
        let mut records = Vec::new();
        loop {
            let (used, record) = self.push(input)?;
            input = &input[used..];
            match record {
                Some(r) => records.push(r),
                None if input.is_empty() => return Ok(records),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::rpc::captured::{hex, CALL_ADD_3_FRAGMENTS, CALL_TCP_ADD_SYS, REPLY_ADD_5};

    fn span(offset: usize, len: usize, label: &str) -> Span {
        Span {
            offset,
            len,
            label: label.into(),
            value: "v".into(),
        }
    }

    #[test]
    fn a_captured_single_fragment_record_round_trips() {
        let wire = hex(CALL_TCP_ADD_SYS);
        let records = RecordReader::new().feed(&wire).expect("valid");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].fragments, [0x54]);
        assert_eq!(records[0].data, wire[4..]);
        assert_eq!(records[0].wire(), wire);
        assert_eq!(encode(&records[0].data, DEFAULT_MAX_RECORD), wire);
    }

    #[test]
    fn three_fragments_libtirpc_accepted_are_put_back_together() {
        let wire = hex(CALL_ADD_3_FRAGMENTS);
        let records = RecordReader::new().feed(&wire).expect("valid");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].fragments, [12, 20, 16]);
        assert_eq!(records[0].data.len(), 48);
        assert_eq!(records[0].wire(), wire);
        assert_eq!(encode_fragments(&records[0].data, &[12, 20, 16]), Ok(wire));
    }

    #[test]
    fn records_come_out_whatever_the_chunk_sizes() {
        let mut stream = hex(CALL_ADD_3_FRAGMENTS);
        stream.extend(hex(REPLY_ADD_5));
        stream.extend(encode(&[], 8)); // an empty record: one empty last fragment
        stream.extend(encode(&(0..100).collect::<Vec<u8>>(), 7));
        for chunk in 1..=stream.len() {
            let mut r = RecordReader::new();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                got.extend(r.feed(c).expect("valid stream"));
            }
            assert!(!r.is_mid_record(), "chunk {chunk}");
            let wire: Vec<u8> = got.iter().flat_map(Record::wire).collect();
            assert_eq!(wire, stream, "chunk {chunk}");
            assert_eq!(got.len(), 4);
            assert_eq!(got[2].data, b"");
            assert_eq!(got[3].fragments.len(), 15);
        }
    }

    #[test]
    fn a_2_gib_mark_is_refused_from_its_4_bytes() {
        let mut r = RecordReader::new();
        let e = r.feed(&[0xff, 0xff, 0xff, 0xff]).expect_err("2 GiB");
        assert_eq!(
            e,
            RecordError::TooLong {
                len: 0x7fff_ffff,
                max: DEFAULT_MAX_RECORD
            }
        );
        assert_eq!(r.buffered(), 0);
        // The stream stays broken.
        assert_eq!(r.feed(&hex(REPLY_ADD_5)), Err(e));
        assert!(r.error().is_some());
    }

    #[test]
    fn the_limit_counts_the_whole_record_not_one_fragment() {
        let mut r = RecordReader::with_limits(10, 8);
        let first = [0, 0, 0, 6, 1, 2, 3, 4, 5, 6];
        assert_eq!(r.feed(&first), Ok(vec![]));
        assert_eq!(r.buffered(), 6);
        let e = r.feed(&[0x80, 0, 0, 5]).expect_err("6 + 5 > 10");
        assert_eq!(e, RecordError::TooLong { len: 11, max: 10 });
        assert_eq!(r.buffered(), 0, "what it held is let go");
        // Exactly the maximum is fine.
        let mut r = RecordReader::with_limits(10, 8);
        let ok = r.feed(&[0, 0, 0, 6, 1, 2, 3, 4, 5, 6, 0x80, 0, 0, 4, 7, 8, 9, 10]);
        assert_eq!(ok.expect("10 bytes").len(), 1);
    }

    #[test]
    fn endless_empty_fragments_are_cut_off() {
        let mut r = RecordReader::with_limits(DEFAULT_MAX_RECORD, 3);
        let e = r.feed(&[0; 16]).expect_err("4 empty fragments");
        assert_eq!(e, RecordError::TooManyFragments { max: 3 });
    }

    #[test]
    fn push_hands_over_records_before_a_bad_mark() {
        let mut input = hex(REPLY_ADD_5);
        let good = input.len();
        input.extend([0xff, 0xff, 0xff, 0xff]);
        let mut r = RecordReader::new();
        let (used, rec) = r.push(&input).expect("first record is fine");
        assert_eq!(used, good);
        assert!(rec.is_some());
        assert!(r.push(&input[used..]).is_err());
        // feed drops it with the error.
        assert!(RecordReader::new().feed(&input).is_err());
    }

    #[test]
    fn a_stream_cut_inside_a_record_says_so() {
        let wire = hex(CALL_TCP_ADD_SYS);
        let mut r = RecordReader::new();
        assert_eq!(r.feed(&wire[..2]), Ok(vec![]));
        assert!(r.is_mid_record());
        assert_eq!(r.buffered(), 2);
        assert_eq!(r.feed(&wire[2..50]), Ok(vec![]));
        assert_eq!(r.buffered(), 46);
        assert_eq!(r.feed(&wire[50..]).expect("rest").len(), 1);
        assert!(!r.is_mid_record());
    }

    #[test]
    fn fragment_lengths_split_and_check() {
        assert_eq!(fragment_lens(0, 4), [0]);
        assert_eq!(fragment_lens(10, 4), [4, 4, 2]);
        assert_eq!(fragment_lens(8, 4), [4, 4]);
        assert_eq!(fragment_lens(3, 0), [1, 1, 1]);
        assert_eq!(
            encode_fragments(b"abc", &[1, 1]),
            Err(RecordError::BadFragments)
        );
        assert_eq!(encode_fragments(b"", &[]), Err(RecordError::BadFragments));
        assert_eq!(
            encode(b"abcde", 2),
            hex("00000002 6162 00000002 6364 80000001 65")
        );
    }

    #[test]
    fn frame_gives_the_wire_and_its_spans_together() {
        let (wire, spans) = frame(b"abcdefgh", &[span(0, 8, "args")], 5);
        assert_eq!(wire, hex("00000005 6162636465 80000003 666768"));
        let got: Vec<_> = spans
            .iter()
            .map(|s| (s.offset, s.len, s.label.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 4, MARK_LABEL),
                (4, 5, "args"),
                (9, 4, MARK_LABEL),
                (13, 3, "args")
            ]
        );
    }

    #[test]
    fn spans_move_behind_marks_and_split_at_fragment_edges() {
        let spans = [span(0, 4, "xid"), span(4, 8, "args")];
        let got = frame_spans(&spans, &[6, 6]);
        let got: Vec<_> = got
            .iter()
            .map(|s| (s.offset, s.len, s.label.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 4, MARK_LABEL, "fragment, 6 bytes"),
                (4, 4, "xid", "v"),
                (8, 2, "args", "v"),
                (10, 4, MARK_LABEL, "last fragment, 6 bytes"),
                (14, 6, "args", ""),
            ]
        );
    }
}
