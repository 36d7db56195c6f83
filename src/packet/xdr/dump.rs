//! Labelled hex dump of an encoded buffer: one line per XDR item (long
//! items wrap every [`DUMP_WIDTH`] bytes), as data for a renderer.

use super::Span;

/// Bytes on one dump line at most; 16 keeps an 80-column line with a label.
pub const DUMP_WIDTH: usize = 16;

/// Label of bytes no span covers.
pub const UNLABELLED: &str = "(unlabelled)";

/// One line of a hex dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpLine {
    /// Offset of the first byte in the dumped buffer.
    pub offset: usize,
    /// The bytes as lowercase hex pairs separated by spaces: `80 00 00 54`.
    pub hex: String,
    /// The item; empty on the lines that continue a long item.
    pub label: String,
    /// The item's value as text (see [`Span::value`]); empty on
    /// continuation lines.
    pub value: String,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn lines(
    out: &mut Vec<DumpLine>,
    bytes: &[u8],
    start: usize,
    end: usize,
    label: &str,
    value: &str,
) {
    for (i, at) in (start..end).step_by(DUMP_WIDTH).enumerate() {
        let first = i == 0;
        out.push(DumpLine {
            offset: at,
            hex: hex(&bytes[at..end.min(at + DUMP_WIDTH)]),
            label: if first {
                label.to_owned()
            } else {
                String::new()
            },
            value: if first {
                value.to_owned()
            } else {
                String::new()
            },
        });
    }
}

/// The dump of `bytes` with the items `spans` name. Spans may come in any
/// order; bytes no span covers get [`UNLABELLED`] lines, and where spans
/// overlap the earlier one keeps the shared bytes.
pub fn dump(bytes: &[u8], spans: &[Span]) -> Vec<DumpLine> {
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| s.offset);
    let mut out = Vec::new();
    let mut at = 0;
    for s in sorted {
        let start = s.offset.max(at);
        let end = s.offset.saturating_add(s.len).min(bytes.len());
        if start >= end {
            continue;
        }
        if start > at {
            lines(&mut out, bytes, at, start, UNLABELLED, "");
        }
        lines(&mut out, bytes, start, end, &s.label, &s.value);
        at = end;
    }
    if at < bytes.len() {
        lines(&mut out, bytes, at, bytes.len(), UNLABELLED, "");
    }
    out
}

/// Replaces the first span labelled `label` (a call's `args`, say) with
/// `inner`, the spans of decoding or encoding those bytes on their own,
/// moved to where they lie. Returns whether `label` was found.
pub fn splice(spans: &mut Vec<Span>, label: &str, inner: &[Span]) -> bool {
    let Some(i) = spans.iter().position(|s| s.label == label) else {
        return false;
    };
    let base = spans[i].offset;
    spans.splice(i..=i, inner.iter().map(|s| s.shifted(base)));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::xdr::{example, Reader, Writer};

    fn span(offset: usize, len: usize, label: &str) -> Span {
        Span {
            offset,
            len,
            label: label.into(),
            value: String::new(),
        }
    }

    #[test]
    fn the_rfc4506_example_dumps_one_line_per_item() {
        let mut w = Writer::with_spans();
        example::write(&mut w).expect("fits");
        let (bytes, spans) = w.into_parts();
        let d = dump(&bytes, &spans);
        let text: Vec<String> = d
            .iter()
            .map(|l| format!("{:3} {:<11} {} {}", l.offset, l.hex, l.label, l.value))
            .collect();
        assert_eq!(
            text,
            [
                "  0 00 00 00 09 filename length 9",
                "  4 73 69 6c 6c 79 70 72 6f 67 filename \"sillyprog\"",
                " 13 00 00 00    filename padding ",
                " 16 00 00 00 02 type EXEC",
                " 20 00 00 00 04 interpretor length 4",
                " 24 6c 69 73 70 interpretor \"lisp\"",
                " 28 00 00 00 04 owner length 4",
                " 32 6a 6f 68 6e owner \"john\"",
                " 36 00 00 00 06 data length 6",
                " 40 28 71 75 69 74 29 data ",
                " 46 00 00       data padding ",
            ]
        );
    }

    #[test]
    fn long_items_wrap_and_uncovered_bytes_say_so() {
        let bytes: Vec<u8> = (0..40).collect();
        let d = dump(&bytes, &[span(4, 34, "body")]);
        let got: Vec<_> = d.iter().map(|l| (l.offset, l.label.as_str())).collect();
        assert_eq!(
            got,
            [
                (0, UNLABELLED),
                (4, "body"),
                (20, ""),
                (36, ""),
                (38, UNLABELLED)
            ]
        );
        assert_eq!(d[3].hex, "24 25");
    }

    #[test]
    fn overlapping_and_out_of_range_spans_do_not_repeat_bytes() {
        let d = dump(
            &[1, 2, 3, 4],
            &[span(0, 4, "a"), span(2, 4, "b"), span(9, 4, "c")],
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].hex, "01 02 03 04");
    }

    #[test]
    fn splice_puts_the_arguments_fields_in_place_of_args() {
        let mut w = Writer::with_spans();
        w.u32("xid", 1);
        w.raw("args", &[0, 0, 0, 2, 0, 0, 0, 3]);
        let (bytes, mut spans) = w.into_parts();
        let mut r = Reader::with_spans(&bytes[4..]);
        r.i32("args.a").expect("there");
        r.i32("args.b").expect("there");
        assert!(splice(&mut spans, "args", r.spans()));
        assert!(!splice(&mut spans, "args", &[]));
        let got: Vec<_> = spans.iter().map(|s| (s.offset, s.label.as_str())).collect();
        assert_eq!(got, [(0, "xid"), (4, "args.a"), (8, "args.b")]);
    }
}
