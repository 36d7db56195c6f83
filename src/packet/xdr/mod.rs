//! XDR (RFC 4506): the encoding under ONC RPC. Every item is big-endian and
//! takes a multiple of 4 bytes (§3); opaque data and strings are padded with
//! zero bytes up to the next multiple of 4 (§4.9–4.11), variable-length items
//! and arrays start with a 4-byte count (§4.10, §4.13).
//!
//! [`Writer`] appends items to a buffer; [`Reader`] takes them off a `&[u8]`
//! and checks every step: a short buffer, a non-zero padding byte, a length
//! over the caller's maximum, a bool that is neither 0 nor 1, an enum value
//! that has no name. A length word is checked against the maximum and the
//! bytes remaining before anything is allocated, so a peer cannot make us
//! reserve memory it did not send.
//!
//! Both can record a labelled [`Span`] for every item they touch; [`dump`]
//! turns spans into hex-dump lines, so the lab can show which bytes on the
//! wire are the xid, the credential's machine name or its padding.

mod dump;
mod reader;
mod writer;

use std::fmt;

pub use dump::{dump, splice, DumpLine, DUMP_WIDTH, UNLABELLED};
pub use reader::Reader;
pub use writer::Writer;

/// The XDR unit: every item's length is a multiple of it (RFC 4506 §3).
pub const UNIT: usize = 4;

/// Padding after `len` bytes of opaque data or string.
pub fn padding(len: usize) -> usize {
    (UNIT - len % UNIT) % UNIT
}

/// Where one item lies in an encoded buffer, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
    /// The field: `xid`, `cred.machinename length`, `args.a`.
    pub label: String,
    /// The value as text: `1000`, `CALL`, `"ipclab"`; empty for opaque
    /// bytes and padding, which the hex already shows.
    pub value: String,
}

impl Span {
    /// The same span `by` bytes further on (behind a record mark, say).
    pub fn shifted(&self, by: usize) -> Span {
        Span {
            offset: self.offset + by,
            ..self.clone()
        }
    }
}

/// What was wrong with an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdrErrorKind {
    /// The item needs `need` bytes and only `have` are left.
    Truncated { need: u64, have: usize },
    /// A padding byte is not zero (RFC 4506 §4.9 makes them zero).
    BadPadding,
    /// A length or count over the maximum this field allows.
    TooLong { len: u64, max: usize },
    /// A bool that is neither 0 (FALSE) nor 1 (TRUE) (§4.4).
    BadBool(u32),
    /// An enum value that is not one of the enum's (§4.3).
    BadEnum(i32),
    /// A string that is not UTF-8 (RFC 4506 says ASCII; we take UTF-8).
    NotUtf8,
    /// Bytes left over after the last item.
    Trailing(usize),
}

/// An item that could not be encoded or decoded: which field, at which byte
/// offset, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdrError {
    pub at: usize,
    pub field: String,
    pub kind: XdrErrorKind,
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: ", self.field, self.at)?;
        match &self.kind {
            XdrErrorKind::Truncated { need, have } => {
                write!(f, "needs {need} bytes, {have} left")
            }
            XdrErrorKind::BadPadding => f.write_str("padding byte is not zero"),
            XdrErrorKind::TooLong { len, max } => {
                write!(f, "length {len} over the maximum {max}")
            }
            XdrErrorKind::BadBool(v) => write!(f, "bool is {v}, not 0 or 1"),
            XdrErrorKind::BadEnum(v) => write!(f, "{v} is not a value of this enum"),
            XdrErrorKind::NotUtf8 => f.write_str("string is not UTF-8"),
            XdrErrorKind::Trailing(n) => write!(f, "{n} bytes after the last field"),
        }
    }
}

impl std::error::Error for XdrError {}

/// Names of an enum's values; `None` for a value the enum does not have.
pub type Names = fn(u32) -> Option<&'static str>;

pub(crate) fn named(v: u32, names: Names) -> String {
    names(v).map_or_else(|| v.to_string(), str::to_owned)
}

pub(crate) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Runs `write` on a new writer: the bytes and, when `spans` is set, a
/// span per item (empty otherwise).
///
/// # Errors
/// What `write` returns.
pub fn encode_with(
    spans: bool,
    write: impl FnOnce(&mut Writer) -> Result<(), XdrError>,
) -> Result<(Vec<u8>, Vec<Span>), XdrError> {
    let mut w = if spans {
        Writer::with_spans()
    } else {
        Writer::new()
    };
    write(&mut w)?;
    Ok(w.into_parts())
}

/// Runs `read` over `bytes`, which it must read to the end: the value
/// and, when `spans` is set, a span per item.
///
/// # Errors
/// What `read` returns, or `Trailing` for bytes it left.
pub fn decode_with<'a, T, E: From<XdrError>>(
    bytes: &'a [u8],
    spans: bool,
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, E>,
) -> Result<(T, Vec<Span>), E> {
    let mut r = if spans {
        Reader::with_spans(bytes)
    } else {
        Reader::new(bytes)
    };
    let value = read(&mut r)?;
    Ok((value, r.finish()?))
}

/// The example of RFC 4506 §7, shared by the tests of the reader, the
/// writer and the dump.
#[cfg(test)]
pub(crate) mod example {
    use super::{Reader, Writer, XdrError};

    /// `struct file { string filename<255>; filetype type (EXEC, "lisp");
    /// string owner<32>; opaque data<>; }` holding "sillyprog", run by
    /// "lisp", owned by "john", data "(quit)", byte for byte as §7 shows it.
    pub const FILE: &str = "00000009 73696c6c 7970726f 67000000 00000002 00000004 6c697370 \
                            00000004 6a6f686e 00000006 28717569 74290000";

    pub fn bytes() -> Vec<u8> {
        let s: String = FILE.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex literal"))
            .collect()
    }

    pub fn filetype(v: u32) -> Option<&'static str> {
        ["TEXT", "DATA", "EXEC"].get(v as usize).copied()
    }

    pub fn write(w: &mut Writer) -> Result<(), XdrError> {
        w.string("filename", "sillyprog", 255)?;
        w.u32_named("type", 2, filetype);
        w.string("interpretor", "lisp", 255)?;
        w.string("owner", "john", 32)?;
        w.opaque("data", b"(quit)", 1 << 16)
    }

    pub fn read<'a>(r: &mut Reader<'a>) -> Result<(&'a str, &'a str, &'a str, &'a [u8]), XdrError> {
        let name = r.string("filename", 255)?;
        r.enumeration("type", filetype)?;
        let interp = r.string("interpretor", 255)?;
        let owner = r.string("owner", 32)?;
        let data = r.opaque("data", 1 << 16)?;
        Ok((name, interp, owner, data))
    }
}
