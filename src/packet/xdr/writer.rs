//! XDR encoding (RFC 4506 §4): items appended to a growing buffer.

use super::{named, padding, quoted, Names, Span, XdrError, XdrErrorKind, UNIT};

/// Appends XDR items to a buffer, recording a span per item when asked to.
///
/// Variable-length items take the same maximum a [`Reader`](super::Reader) would check, so
/// we never send what a peer with the same limits must refuse.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    buf: Vec<u8>,
    spans: Option<Vec<Span>>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer that records a [`Span`] for every item.
    pub fn with_spans() -> Self {
        Writer {
            buf: Vec::new(),
            spans: Some(Vec::new()),
        }
    }

    pub fn records_spans(&self) -> bool {
        self.spans.is_some()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn spans(&self) -> &[Span] {
        self.spans.as_deref().unwrap_or_default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes and the spans (empty when not recording).
    pub fn into_parts(self) -> (Vec<u8>, Vec<Span>) {
        (self.buf, self.spans.unwrap_or_default())
    }

    fn push(&mut self, label: &str, bytes: &[u8], value: impl FnOnce() -> String) {
        if let Some(spans) = &mut self.spans {
            if !bytes.is_empty() {
                spans.push(Span {
                    offset: self.buf.len(),
                    len: bytes.len(),
                    label: label.to_owned(),
                    value: value(),
                });
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    fn too_long(&self, label: &str, len: usize, max: usize) -> XdrError {
        XdrError {
            at: self.buf.len(),
            field: label.to_owned(),
            kind: XdrErrorKind::TooLong {
                len: len as u64,
                max,
            },
        }
    }

    /// `unsigned int` (§4.2).
    pub fn u32(&mut self, label: &str, v: u32) {
        self.push(label, &v.to_be_bytes(), || v.to_string());
    }

    /// `int` (§4.1).
    pub fn i32(&mut self, label: &str, v: i32) {
        self.push(label, &v.to_be_bytes(), || v.to_string());
    }

    /// `unsigned hyper` (§4.5).
    pub fn u64(&mut self, label: &str, v: u64) {
        self.push(label, &v.to_be_bytes(), || v.to_string());
    }

    /// `hyper` (§4.5).
    pub fn i64(&mut self, label: &str, v: i64) {
        self.push(label, &v.to_be_bytes(), || v.to_string());
    }

    /// `bool` (§4.4); also the "is there another" word of optional data (§4.19).
    pub fn bool(&mut self, label: &str, v: bool) {
        let text = if v { "TRUE" } else { "FALSE" };
        self.push(label, &u32::from(v).to_be_bytes(), || text.to_owned());
    }

    /// An enum (§4.3) or any word whose values have names: the span shows
    /// the name. Every enum in ONC RPC is non-negative, so it travels as
    /// the same 4 bytes as a `u32`.
    pub fn u32_named(&mut self, label: &str, v: u32, names: Names) {
        self.push(label, &v.to_be_bytes(), || named(v, names));
    }

    fn pad(&mut self, label: &str, len: usize) {
        let n = padding(len);
        if n > 0 {
            self.push(&format!("{label} padding"), &[0; UNIT][..n], String::new);
        }
    }

    /// Fixed-length opaque data (§4.9), padded.
    pub fn opaque_fixed(&mut self, label: &str, data: &[u8]) {
        self.push(label, data, String::new);
        self.pad(label, data.len());
    }

    /// Variable-length opaque data (§4.10): length, bytes, padding.
    ///
    /// # Errors
    /// `TooLong` when `data` is longer than `max`.
    pub fn opaque(&mut self, label: &str, data: &[u8], max: usize) -> Result<(), XdrError> {
        self.length(label, data.len(), max)?;
        self.opaque_fixed(label, data);
        Ok(())
    }

    /// A string (§4.11): length, bytes, padding.
    ///
    /// # Errors
    /// `TooLong` when `s` is longer than `max` bytes.
    pub fn string(&mut self, label: &str, s: &str, max: usize) -> Result<(), XdrError> {
        self.length(label, s.len(), max)?;
        self.push(label, s.as_bytes(), || quoted(s));
        self.pad(label, s.len());
        Ok(())
    }

    /// The length word of variable-length data, labelled `label length`.
    ///
    /// # Errors
    /// `TooLong` when `len` is over `max`.
    pub fn length(&mut self, label: &str, len: usize, max: usize) -> Result<(), XdrError> {
        let Ok(word) = u32::try_from(len) else {
            return Err(self.too_long(label, len, max));
        };
        if len > max {
            return Err(self.too_long(label, len, max));
        }
        self.u32(&format!("{label} length"), word);
        Ok(())
    }

    /// A variable-length array (§4.13): the count, then each item written
    /// by `each`, labelled `label[i]`.
    ///
    /// # Errors
    /// `TooLong` when there are more than `max` items, or what `each` returns.
    pub fn array<T>(
        &mut self,
        label: &str,
        items: &[T],
        max: usize,
        mut each: impl FnMut(&mut Writer, &str, &T) -> Result<(), XdrError>,
    ) -> Result<(), XdrError> {
        if items.len() > max {
            return Err(self.too_long(label, items.len(), max));
        }
        let count =
            u32::try_from(items.len()).map_err(|_| self.too_long(label, items.len(), max))?;
        self.u32(&format!("{label} count"), count);
        for (i, item) in items.iter().enumerate() {
            each(self, &format!("{label}[{i}]"), item)?;
        }
        Ok(())
    }

    /// Bytes that are already XDR (a call's arguments), as one span.
    pub fn raw(&mut self, label: &str, data: &[u8]) {
        self.push(label, data, String::new);
    }

    /// Appends what another writer wrote, with its spans moved along.
    pub fn append(&mut self, other: Writer) {
        let base = self.buf.len();
        if let (Some(spans), Some(theirs)) = (&mut self.spans, other.spans) {
            spans.extend(theirs.iter().map(|s| s.shifted(base)));
        }
        self.buf.extend_from_slice(&other.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::xdr::example;

    #[test]
    fn writes_the_rfc4506_example_file() {
        let mut w = Writer::new();
        example::write(&mut w).expect("fits its limits");
        assert_eq!(w.bytes(), example::bytes());
        assert!(w.spans().is_empty(), "spans only when asked for");
    }

    #[test]
    fn integers_are_big_endian_and_hyper_takes_eight_bytes() {
        let mut w = Writer::new();
        w.u32("u", 0x0102_0304);
        w.i32("i", -2);
        w.u64("uh", 0x0102_0304_0506_0708);
        w.i64("h", -1);
        w.bool("t", true);
        w.bool("f", false);
        assert_eq!(
            w.into_bytes(),
            [
                1, 2, 3, 4, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn a_string_gets_length_bytes_and_zero_padding_spans() {
        let mut w = Writer::with_spans();
        w.string("cred.machinename", "ipclab", 255).expect("short");
        let (bytes, spans) = w.into_parts();
        assert_eq!(bytes, b"\0\0\0\x06ipclab\0\0");
        let got: Vec<_> = spans
            .iter()
            .map(|s| (s.offset, s.len, s.label.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 4, "cred.machinename length", "6"),
                (4, 6, "cred.machinename", "\"ipclab\""),
                (10, 2, "cred.machinename padding", ""),
            ]
        );
    }

    #[test]
    fn over_the_maximum_is_refused_and_nothing_is_written() {
        let mut w = Writer::new();
        let e = w.string("s", "abcdef", 5).expect_err("6 > 5");
        assert_eq!(e.kind, XdrErrorKind::TooLong { len: 6, max: 5 });
        let e = w
            .array("gids", &[0u32; 17], 16, |w, l, g| {
                w.u32(l, *g);
                Ok(())
            })
            .expect_err("17 > 16");
        assert_eq!(
            e.to_string(),
            "gids at byte 0: length 17 over the maximum 16"
        );
        assert!(w.is_empty());
    }

    #[test]
    fn arrays_count_then_items_labelled_by_index() {
        let mut w = Writer::with_spans();
        w.array("gids", &[1000u32, 24], 16, |w, l, g| {
            w.u32(l, *g);
            Ok(())
        })
        .expect("fits");
        assert_eq!(w.bytes(), [0, 0, 0, 2, 0, 0, 3, 0xe8, 0, 0, 0, 24]);
        let labels: Vec<_> = w.spans().iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["gids count", "gids[0]", "gids[1]"]);
    }

    #[test]
    fn appended_writers_keep_their_spans_moved_along() {
        let mut args = Writer::with_spans();
        args.i32("args.a", 2);
        args.i32("args.b", 3);
        let mut w = Writer::with_spans();
        w.u32("xid", 7);
        w.append(args);
        assert_eq!(w.len(), 12);
        let spans: Vec<_> = w
            .spans()
            .iter()
            .map(|s| (s.offset, s.label.as_str()))
            .collect();
        assert_eq!(spans, [(0, "xid"), (4, "args.a"), (8, "args.b")]);
    }

    #[test]
    fn named_words_show_their_name_or_number() {
        let mut w = Writer::with_spans();
        w.u32_named("type", 2, example::filetype);
        w.u32_named("type", 9, example::filetype);
        w.opaque_fixed("fixed", &[1, 2, 3, 4, 5]);
        let values: Vec<_> = w.spans().iter().map(|s| s.value.as_str()).collect();
        assert_eq!(values, ["EXEC", "9", "", ""]);
        assert_eq!(&w.bytes()[8..], [1, 2, 3, 4, 5, 0, 0, 0]);
    }
}
