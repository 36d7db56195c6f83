//! The bytes of a frame as tcpdump shows them under its line: `-X` in hex
//! and ASCII (print-ascii.c's `hex_and_ascii_print`, 16 bytes a line),
//! `-A` in ASCII; and the time of day that starts each line.

use std::fmt::Write as _;
use std::time::Duration;

/// How the payload is shown under each frame's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    #[default]
    None,
    /// `-X`: hex and ASCII.
    Hex,
    /// `-A`: ASCII.
    Ascii,
}

/// A byte tcpdump shows as itself in ASCII: `isgraph`, 0x21 to 0x7e.
fn graph(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// `-X`: `\t0x0000:  4500 0054 5e80 4000 4001 de26 7f00 0001  E..T^.@.@..&....`
pub fn hex_lines(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut hex = String::new();
            for pair in chunk.chunks(2) {
                hex.push(' ');
                for b in pair {
                    let _ = write!(hex, "{b:02x}");
                }
            }
            let ascii: String = chunk
                .iter()
                .map(|&b| if graph(b) { b as char } else { '.' })
                .collect();
            format!("\t0x{:04x}: {hex:<40}  {ascii}", i * 16)
        })
        .collect()
}

/// `-A`: the bytes as text, lines split where the bytes have a newline;
/// other unprintable bytes (but tab and space) as `.`, a carriage return
/// before a newline dropped.
pub fn ascii_lines(bytes: &[u8]) -> Vec<String> {
    let mut text = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => {
                if i + 2 < bytes.len() && bytes[i + 1] != b'\n' {
                    text.push('.');
                }
            }
            b'\n' | b'\t' | b' ' => text.push(b as char),
            b if graph(b) => text.push(b as char),
            _ => text.push('.'),
        }
    }
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    // A last newline ends the last line; it starts no empty one.
    if lines.len() > 1 && lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// The lines to show under a frame's line for `mode`, from the network
/// layer (`net`) on, as tcpdump without `-XX`/`-AA`.
pub fn payload_lines(mode: Payload, frame: &[u8], net: usize) -> Vec<String> {
    let bytes = frame.get(net..).unwrap_or(&[]);
    match mode {
        Payload::None => Vec::new(),
        Payload::Hex => hex_lines(bytes),
        Payload::Ascii => ascii_lines(bytes),
    }
}

/// The time of day of `stamp` (since the epoch), `offset` seconds east of
/// UTC, as tcpdump starts each line: `12:34:56.789012`.
pub fn clock(stamp: Duration, offset: i64) -> String {
    let secs = (stamp.as_secs() as i64)
        .wrapping_add(offset)
        .rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        stamp.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_lines_match_tcpdump_x() {
        // The first 20 bytes of an ICMP echo request on lo, as tcpdump -X shows them.
        let b = [
            0x45, 0, 0, 0x54, 0x5e, 0x80, 0x40, 0, 0x40, 1, 0xde, 0x26, 0x7f, 0, 0, 1, 0x7f, 0, 0,
            1,
        ];
        assert_eq!(
            hex_lines(&b),
            [
                "\t0x0000:  4500 0054 5e80 4000 4001 de26 7f00 0001  E..T^.@.@..&....",
                "\t0x0010:  7f00 0001                                ...."
            ]
        );
        assert_eq!(
            hex_lines(&[0x41]),
            ["\t0x0000:  41                                       A"]
        );
    }

    #[test]
    fn ascii_lines_split_on_newlines() {
        assert_eq!(
            ascii_lines(b"GET /\r\nHost: x\x01\r\n"),
            ["GET /", "Host: x."]
        );
        assert_eq!(ascii_lines(b"a\rb\tc"), ["a.b\tc"]);
    }

    #[test]
    fn clock_is_the_time_of_day() {
        let t = Duration::new(86_400 * 3 + 12 * 3600 + 34 * 60 + 56, 789_012_345);
        assert_eq!(clock(t, 0), "12:34:56.789012");
        assert_eq!(clock(t, -13 * 3600), "23:34:56.789012");
    }
}
