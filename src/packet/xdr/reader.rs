//! XDR decoding (RFC 4506 §4): items taken off a byte slice, each checked.

use super::{named, padding, quoted, Names, Span, XdrError, XdrErrorKind};

/// Takes XDR items off a byte slice, checking each; borrowed items
/// (opaque data, strings) are slices of the input, never copies.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    spans: Option<Vec<Span>>,
    /// The field a nested reader reads, for its padding's label.
    label: String,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
            spans: None,
            label: String::new(),
        }
    }

    /// A reader that records a [`Span`] for every item it reads.
    pub fn with_spans(buf: &'a [u8]) -> Self {
        Reader {
            spans: Some(Vec::new()),
            ..Reader::new(buf)
        }
    }

    /// Count offsets in spans and errors from `base`: for a buffer that
    /// is part of a larger one (a call's arguments inside the message).
    pub fn at_offset(self, base: usize) -> Self {
        Reader { base, ..self }
    }

    pub fn records_spans(&self) -> bool {
        self.spans.is_some()
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn spans(&self) -> &[Span] {
        self.spans.as_deref().unwrap_or_default()
    }

    pub fn into_spans(self) -> Vec<Span> {
        self.spans.unwrap_or_default()
    }

    /// Whether every byte has been read.
    ///
    /// # Errors
    /// `Trailing` when bytes are left.
    pub fn check_end(&self) -> Result<(), XdrError> {
        match self.remaining() {
            0 => Ok(()),
            n => {
                let field = if self.label.is_empty() {
                    "end"
                } else {
                    &self.label
                };
                Err(self.error(field, XdrErrorKind::Trailing(n)))
            }
        }
    }

    /// Ends the reading: every byte must have been read.
    ///
    /// # Errors
    /// `Trailing` when bytes are left.
    pub fn finish(self) -> Result<Vec<Span>, XdrError> {
        self.check_end()?;
        Ok(self.into_spans())
    }

    fn error(&self, field: &str, kind: XdrErrorKind) -> XdrError {
        XdrError {
            at: self.base + self.pos,
            field: field.to_owned(),
            kind,
        }
    }

    fn take(&mut self, label: &str, n: u64) -> Result<&'a [u8], XdrError> {
        let have = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= have => {
                let s = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(self.error(label, XdrErrorKind::Truncated { need: n, have })),
        }
    }

    fn record(&mut self, label: &str, len: usize, value: impl FnOnce() -> String) {
        let offset = self.base + self.pos - len;
        if let Some(spans) = &mut self.spans {
            if len > 0 {
                spans.push(Span {
                    offset,
                    len,
                    label: label.to_owned(),
                    value: value(),
                });
            }
        }
    }

    fn word(&mut self, label: &str) -> Result<[u8; 4], XdrError> {
        let b = self.take(label, 4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    fn dword(&mut self, label: &str) -> Result<[u8; 8], XdrError> {
        let b = self.take(label, 8)?;
        let mut out = [0; 8];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// `unsigned int` (§4.2).
    pub fn u32(&mut self, label: &str) -> Result<u32, XdrError> {
        let v = u32::from_be_bytes(self.word(label)?);
        self.record(label, 4, || v.to_string());
        Ok(v)
    }

    /// `int` (§4.1).
    pub fn i32(&mut self, label: &str) -> Result<i32, XdrError> {
        let v = i32::from_be_bytes(self.word(label)?);
        self.record(label, 4, || v.to_string());
        Ok(v)
    }

    /// `unsigned hyper` (§4.5).
    pub fn u64(&mut self, label: &str) -> Result<u64, XdrError> {
        let v = u64::from_be_bytes(self.dword(label)?);
        self.record(label, 8, || v.to_string());
        Ok(v)
    }

    /// `hyper` (§4.5).
    pub fn i64(&mut self, label: &str) -> Result<i64, XdrError> {
        let v = i64::from_be_bytes(self.dword(label)?);
        self.record(label, 8, || v.to_string());
        Ok(v)
    }

    /// `bool` (§4.4): 0 or 1, nothing else.
    pub fn bool(&mut self, label: &str) -> Result<bool, XdrError> {
        let v = u32::from_be_bytes(self.word(label)?);
        let b = match v {
            0 => false,
            1 => true,
            _ => {
                self.pos -= 4;
                return Err(self.error(label, XdrErrorKind::BadBool(v)));
            }
        };
        self.record(label, 4, || (if b { "TRUE" } else { "FALSE" }).to_owned());
        Ok(b)
    }

    /// An enum (§4.3): a value `names` knows, or `BadEnum`.
    pub fn enumeration(&mut self, label: &str, names: Names) -> Result<u32, XdrError> {
        let v = u32::from_be_bytes(self.word(label)?);
        match names(v) {
            Some(name) => {
                self.record(label, 4, || name.to_owned());
                Ok(v)
            }
            None => {
                self.pos -= 4;
                Err(self.error(label, XdrErrorKind::BadEnum(v as i32)))
            }
        }
    }

    /// A word whose known values have names, any value accepted (an
    /// auth flavor: unknown flavors are kept as they are).
    pub fn u32_named(&mut self, label: &str, names: Names) -> Result<u32, XdrError> {
        let v = u32::from_be_bytes(self.word(label)?);
        self.record(label, 4, || named(v, names));
        Ok(v)
    }

    fn unpad(&mut self, label: &str, len: usize) -> Result<(), XdrError> {
        let n = padding(len);
        if n == 0 {
            return Ok(());
        }
        let pad_label = format!("{label} padding");
        let pad = self.take(&pad_label, n as u64)?;
        if pad.iter().any(|&b| b != 0) {
            self.pos -= n;
            return Err(self.error(&pad_label, XdrErrorKind::BadPadding));
        }
        self.record(&pad_label, n, String::new);
        Ok(())
    }

    /// Fixed-length opaque data (§4.9): `n` bytes and zero padding.
    pub fn opaque_fixed(&mut self, label: &str, n: usize) -> Result<&'a [u8], XdrError> {
        let padded = n as u64 + padding(n) as u64;
        if padded > self.remaining() as u64 {
            return Err(self.error(
                label,
                XdrErrorKind::Truncated {
                    need: padded,
                    have: self.remaining(),
                },
            ));
        }
        let data = self.take(label, n as u64)?;
        self.record(label, n, String::new);
        self.unpad(label, n)?;
        Ok(data)
    }

    /// The length word of variable-length opaque data or a string,
    /// labelled `label length`, checked against `max` and then against the
    /// bytes left (with padding) before anyone allocates. [`Reader::opaque`]
    /// is this then [`Reader::opaque_fixed`].
    pub fn length(&mut self, label: &str, max: usize) -> Result<usize, XdrError> {
        let word_label = format!("{label} length");
        let len = u32::from_be_bytes(self.word(&word_label)?);
        let fail = |r: &mut Self, kind| {
            r.pos -= 4;
            Err(r.error(&word_label, kind))
        };
        if len as u64 > max as u64 {
            return fail(
                self,
                XdrErrorKind::TooLong {
                    len: len.into(),
                    max,
                },
            );
        }
        let need = len as u64 + padding(len as usize) as u64;
        if need > self.remaining() as u64 {
            let have = self.remaining();
            return fail(self, XdrErrorKind::Truncated { need, have });
        }
        self.record(&word_label, 4, || len.to_string());
        Ok(len as usize)
    }

    /// Variable-length opaque data (§4.10) of at most `max` bytes.
    pub fn opaque(&mut self, label: &str, max: usize) -> Result<&'a [u8], XdrError> {
        let n = self.length(label, max)?;
        self.opaque_fixed(label, n)
    }

    /// A string (§4.11) of at most `max` bytes.
    pub fn string(&mut self, label: &str, max: usize) -> Result<&'a str, XdrError> {
        let n = self.length(label, max)?;
        let bytes = self.take(label, n as u64)?;
        let Ok(s) = std::str::from_utf8(bytes) else {
            self.pos -= n;
            return Err(self.error(label, XdrErrorKind::NotUtf8));
        };
        self.record(label, n, || quoted(s));
        self.unpad(label, n)?;
        Ok(s)
    }

    /// A variable-length array (§4.13) of at most `max` items, each at
    /// least `min_item_len` bytes (never 0), read by `each` and labelled
    /// `label[i]`. The count is checked against what the bytes left could
    /// hold before the vector is allocated.
    pub fn array<T>(
        &mut self,
        label: &str,
        max: usize,
        min_item_len: usize,
        mut each: impl FnMut(&mut Reader<'a>, &str) -> Result<T, XdrError>,
    ) -> Result<Vec<T>, XdrError> {
        let count_label = format!("{label} count");
        let n = self.u32(&count_label)?;
        let min = min_item_len.max(1) as u64;
        if n as u64 > max as u64 || n as u64 * min > self.remaining() as u64 {
            let kind = if n as u64 > max as u64 {
                XdrErrorKind::TooLong { len: n.into(), max }
            } else {
                XdrErrorKind::Truncated {
                    need: n as u64 * min,
                    have: self.remaining(),
                }
            };
            self.pos -= 4;
            return Err(self.error(&count_label, kind));
        }
        let mut items = Vec::with_capacity(n as usize);
        for i in 0..n {
            items.push(each(self, &format!("{label}[{i}]"))?);
        }
        Ok(items)
    }

    /// A reader over the next `n` bytes (an opaque body with structure,
    /// such as an AUTH_SYS credential); its spans and errors count from
    /// the start of this reader's buffer. Hand it back to [`Reader::join`],
    /// which checks it read every byte and takes the padding after it.
    pub fn nested(&mut self, label: &str, n: usize) -> Result<Reader<'a>, XdrError> {
        let padded = n as u64 + padding(n) as u64;
        if padded > self.remaining() as u64 {
            let have = self.remaining();
            return Err(self.error(label, XdrErrorKind::Truncated { need: padded, have }));
        }
        let start = self.pos;
        let body = self.take(label, n as u64)?;
        Ok(Reader {
            buf: body,
            pos: 0,
            base: self.base + start,
            spans: self.spans.as_ref().map(|_| Vec::new()),
            label: label.to_owned(),
        })
    }

    /// Ends a nested reader: all its bytes must have been read; its spans
    /// join ours, then its padding is read.
    pub fn join(&mut self, nested: Reader<'a>) -> Result<(), XdrError> {
        let (len, label) = (nested.buf.len(), nested.label.clone());
        let theirs = nested.finish()?;
        if let Some(spans) = &mut self.spans {
            spans.extend(theirs);
        }
        self.unpad(&label, len)
    }

    /// Renames the last span recorded: for a word whose meaning shows
    /// only once read (the FALSE that ends an optional-data list).
    pub fn relabel_last(&mut self, label: &str) {
        if let Some(last) = self.spans.as_mut().and_then(|s| s.last_mut()) {
            label.clone_into(&mut last.label);
        }
    }

    /// Everything left (a call's arguments, a reply's results), as one span.
    pub fn rest(&mut self, label: &str) -> &'a [u8] {
        let n = self.remaining();
        let rest = &self.buf[self.pos..];
        self.pos += n;
        self.record(label, n, String::new);
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::xdr::{example, Writer};

    fn kind(r: Result<impl std::fmt::Debug, XdrError>) -> XdrErrorKind {
        r.expect_err("must be refused").kind
    }

    #[test]
    fn reads_the_rfc4506_example_file() {
        let b = example::bytes();
        let mut r = Reader::new(&b);
        let got = example::read(&mut r).expect("valid");
        assert_eq!(got, ("sillyprog", "lisp", "john", &b"(quit)"[..]));
        r.finish().expect("nothing left");
    }

    #[test]
    fn reader_spans_are_the_writer_spans() {
        let mut w = Writer::with_spans();
        example::write(&mut w).expect("fits");
        let (bytes, written) = w.into_parts();
        let mut r = Reader::with_spans(&bytes);
        example::read(&mut r).expect("valid");
        assert_eq!(r.finish().expect("all read"), written);
    }

    #[test]
    fn every_getter_refuses_a_short_buffer() {
        let b = [0u8; 3];
        assert_eq!(
            kind(Reader::new(&b).u32("xid")),
            XdrErrorKind::Truncated { need: 4, have: 3 }
        );
        assert!(Reader::new(&b).i32("x").is_err());
        assert!(Reader::new(&[0; 7]).u64("x").is_err());
        assert!(Reader::new(&[0; 7]).i64("x").is_err());
        assert!(Reader::new(&b).bool("x").is_err());
        assert!(Reader::new(&b).enumeration("x", example::filetype).is_err());
        assert!(Reader::new(&b).opaque_fixed("x", 1).is_err());
        // 1 byte of data needs its 3 bytes of padding too.
        assert_eq!(
            kind(Reader::new(&[0, 0, 0, 1, 9]).opaque("x", 8)),
            XdrErrorKind::Truncated { need: 4, have: 1 }
        );
    }

    #[test]
    fn padding_must_be_zero() {
        let mut b = example::bytes();
        b[14] = 1; // second fill byte after "sillyprog"
        let e = example::read(&mut Reader::new(&b)).expect_err("bad fill");
        assert_eq!(e.kind, XdrErrorKind::BadPadding);
        assert_eq!((e.at, e.field.as_str()), (13, "filename padding"));
    }

    #[test]
    fn a_length_over_the_maximum_is_refused_from_the_length_word() {
        // 4 GiB - 1 announced, 4 bytes sent: refused, no allocation to make.
        let b = [0xff, 0xff, 0xff, 0xff];
        let e = Reader::new(&b).opaque("data", 400).expect_err("too long");
        assert_eq!(
            e.kind,
            XdrErrorKind::TooLong {
                len: 0xffff_ffff,
                max: 400
            }
        );
        assert_eq!(e.field, "data length");
        // Within the maximum but not sent: truncated, also before allocating.
        let b = [0, 0, 1, 0, 1, 2, 3, 4];
        assert_eq!(
            kind(Reader::new(&b).string("s", 1024)),
            XdrErrorKind::Truncated { need: 256, have: 4 }
        );
    }

    #[test]
    fn bools_and_enums_take_only_their_values() {
        assert_eq!(
            kind(Reader::new(&[0, 0, 0, 2]).bool("b")),
            XdrErrorKind::BadBool(2)
        );
        let b = [0, 0, 0, 3];
        let e = Reader::new(&b).enumeration("type", example::filetype);
        assert_eq!(kind(e), XdrErrorKind::BadEnum(3));
        let b = [0xff, 0xff, 0xff, 0xff];
        let e = Reader::new(&b).enumeration("type", example::filetype);
        assert_eq!(kind(e), XdrErrorKind::BadEnum(-1));
        // A word with names takes any value.
        assert_eq!(
            Reader::new(&b).u32_named("flavor", example::filetype),
            Ok(u32::MAX)
        );
    }

    #[test]
    fn strings_must_be_utf8() {
        let b = [0, 0, 0, 2, 0xc3, 0x28, 0, 0];
        assert_eq!(kind(Reader::new(&b).string("s", 8)), XdrErrorKind::NotUtf8);
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let mut r = Reader::new(&[0, 0, 0, 1, 0, 0, 0, 0]);
        r.u32("x").expect("there");
        assert_eq!(kind(r.finish()), XdrErrorKind::Trailing(4));
    }

    #[test]
    fn an_array_count_is_checked_before_the_vector_is_made() {
        let item = |r: &mut Reader<'_>, l: &str| r.u32(l);
        // 2^31 items announced in 8 bytes: they cannot be there.
        let b = [0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            kind(Reader::new(&b).array("gids", usize::MAX, 4, item)),
            XdrErrorKind::Truncated {
                need: 1 << 33,
                have: 4
            }
        );
        let b = [0, 0, 0, 17];
        assert_eq!(
            kind(Reader::new(&b).array("gids", 16, 4, item)),
            XdrErrorKind::TooLong { len: 17, max: 16 }
        );
        let b = [0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 6];
        let mut r = Reader::with_spans(&b);
        assert_eq!(r.array("gids", 16, 4, item), Ok(vec![5, 6]));
        assert_eq!(r.spans()[2].label, "gids[1]");
    }

    #[test]
    fn a_nested_reader_counts_from_the_outer_buffer_and_must_be_read_whole() {
        // opaque<> holding two words, then one more word outside it.
        let b = [0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        let mut r = Reader::with_spans(&b).at_offset(100);
        let len = r.u32("body length").expect("there") as usize;
        let mut body = r.nested("body", len).expect("there");
        assert_eq!(body.u32("one"), Ok(1));
        let e = Reader::join(&mut r.clone(), body.clone()).expect_err("one word unread");
        assert_eq!((e.at, e.kind), (108, XdrErrorKind::Trailing(4)));
        assert_eq!(body.u32("two"), Ok(2));
        r.join(body).expect("all read");
        assert_eq!(r.u32("after"), Ok(3));
        let spans: Vec<_> = r
            .spans()
            .iter()
            .map(|s| (s.offset, s.label.as_str()))
            .collect();
        assert_eq!(
            spans,
            [
                (100, "body length"),
                (104, "one"),
                (108, "two"),
                (112, "after")
            ]
        );
    }

    #[test]
    fn rest_takes_everything_left() {
        let b = [0, 0, 0, 1, 9, 9];
        let mut r = Reader::with_spans(&b);
        r.u32("xid").expect("there");
        assert_eq!(r.rest("args"), [9, 9]);
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.spans()[1].len, 2);
    }
}
