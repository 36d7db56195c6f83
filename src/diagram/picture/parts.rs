//! The pieces every diagram shares: sizes, colours, arrowheads, the
//! legend, and text made safe for XML.

use svg::node::element::{Definitions, Group, Line, Marker, Path, Rectangle, Text};

use crate::diagram::model::ArrowKind;

/// Sizes in px, for a 12 px monospace font (about 7.2 px a character).
pub const MARGIN: f64 = 16.0;
/// The left column, with each row's step number.
pub const GUTTER: f64 = 64.0;
pub const LANE_W: f64 = 280.0;
pub const BOX_W: f64 = 216.0;
pub const BOX_H: f64 = 18.0;
pub const ROW_H: f64 = 24.0;
pub const HEAD_H: f64 = 44.0;
pub const TITLE_H: f64 = 48.0;
pub const BAND_GAP: f64 = 22.0;
/// Rows per band: a long run is cut into bands, each with the lanes'
/// headers again, so a lane never scrolls away from its name.
pub const BAND_ROWS: usize = 60;
pub const CHAR_W: f64 = 7.2;
pub const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";

pub const INK: &str = "#24292f";
pub const MUTED: &str = "#57606a";
pub const LANE_LINE: &str = "#8c959f";
pub const BOX_FILL: &str = "#f6f8fa";
pub const ERR: &str = "#cf222e";
pub const ERR_FILL: &str = "#ffebe9";
pub const PROVOKED: &str = "#9a6700";
pub const PROVOKED_FILL: &str = "#fff8c5";
pub const BLOCKED: &str = "#d4a72c";
pub const MESSAGE: &str = "#1a7f37";

/// Colour and dash pattern of each kind of arrow.
pub fn arrow_style(kind: ArrowKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ArrowKind::Data => ("#0969da", None),
        ArrowKind::Connect => ("#8250df", None),
        ArrowKind::Fork => ("#1a7f37", Some("5 3")),
        ArrowKind::Reap => ("#6e7781", Some("2 3")),
        ArrowKind::Signal => (ERR, Some("7 4")),
        ArrowKind::Wake => ("#bc4c00", None),
        ArrowKind::Packet => ("#0a7ea4", None),
    }
}

pub const KINDS: [ArrowKind; 7] = [
    ArrowKind::Data,
    ArrowKind::Connect,
    ArrowKind::Fork,
    ArrowKind::Reap,
    ArrowKind::Signal,
    ArrowKind::Wake,
    ArrowKind::Packet,
];

/// One arrowhead per kind, in that kind's colour.
pub fn markers() -> Definitions {
    let mut defs = Definitions::new();
    for k in KINDS {
        let (colour, _) = arrow_style(k);
        defs = defs.add(
            Marker::new()
                .set("id", format!("head-{}", k.class()))
                .set("viewBox", "0 0 10 10")
                .set("refX", 9)
                .set("refY", 5)
                .set("markerWidth", 8)
                .set("markerHeight", 8)
                .set("markerUnits", "userSpaceOnUse")
                .set("orient", "auto")
                .add(
                    Path::new()
                        .set("d", "M0,0 L10,5 L0,10 z")
                        .set("fill", colour),
                ),
        );
    }
    defs
}

/// Text as XML allows it: control characters (which a peer's bytes may
/// hold) are shown as escapes, as strace shows them.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to `chars` columns of the monospace font (a CJK character
/// takes two), with `…` where it was cut.
pub fn fit(text: &str, chars: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    let text = clean(text);
    if text.width() <= chars {
        return text;
    }
    let mut s = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > chars {
            break;
        }
        used += w;
        s.push(c);
    }
    s.push('…');
    s
}

/// A line of text at (x, y).
pub fn text(x: f64, y: f64, size: f64, fill: &str, content: &str) -> Text {
    Text::new(clean(content))
        .set("x", round(x))
        .set("y", round(y))
        .set("font-size", size)
        .set("fill", fill)
}

/// Coordinates to a tenth of a pixel keep the file small and stable.
pub fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The key to the picture, `width` wide; returns it with its height.
pub fn legend(width: f64) -> (Group, f64) {
    let mut g = Group::new().set("class", "legend");
    let mut x = MARGIN;
    let mut y = MARGIN + 10.0;
    let row = 22.0;
    let mut place = |w: f64| {
        if x + w > width - MARGIN && x > MARGIN {
            x = MARGIN;
            y += row;
        }
        let at = (x, y);
        x += w + 18.0;
        at
    };
    let boxes = [
        ("syscall = result", BOX_FILL, MUTED),
        ("failed: = -1 ERRNO", ERR_FILL, ERR),
        ("failed on purpose", PROVOKED_FILL, PROVOKED),
    ];
    for (label, fill, stroke) in boxes {
        let w = label.chars().count() as f64 * CHAR_W + 12.0;
        let (bx, by) = place(w);
        g = g
            .add(
                Rectangle::new()
                    .set("x", round(bx))
                    .set("y", round(by - 12.0))
                    .set("width", round(w))
                    .set("height", 16)
                    .set("rx", 3)
                    .set("fill", fill)
                    .set("stroke", stroke),
            )
            .add(text(bx + 6.0, by, 11.0, INK, label));
    }
    let blocked = "blocked in the call";
    let (bx, by) = place(16.0 + blocked.chars().count() as f64 * 6.6);
    g = g
        .add(
            Rectangle::new()
                .set("x", round(bx))
                .set("y", round(by - 13.0))
                .set("width", 6)
                .set("height", 18)
                .set("fill", BLOCKED),
        )
        .add(text(bx + 12.0, by, 11.0, INK, blocked));
    let names = [
        (ArrowKind::Data, "data (bytes)"),
        (ArrowKind::Connect, "connect → accept"),
        (ArrowKind::Fork, "fork → child"),
        (ArrowKind::Reap, "exit → wait4"),
        (ArrowKind::Signal, "signal"),
        (ArrowKind::Wake, "futex wake"),
        (ArrowKind::Packet, "captured frame"),
    ];
    for (kind, label) in names {
        let w = 40.0 + label.chars().count() as f64 * 6.6;
        let (ax, ay) = place(w);
        g = g
            .add(arrow_line(kind, (ax, ay - 4.0), (ax + 32.0, ay - 4.0)))
            .add(text(ax + 38.0, ay, 11.0, INK, label));
    }
    (g, y + 14.0)
}

/// A straight arrow of `kind` from `a` to `b`.
pub fn arrow_line(kind: ArrowKind, a: (f64, f64), b: (f64, f64)) -> Line {
    let (colour, dash) = arrow_style(kind);
    let mut l = Line::new()
        .set("x1", round(a.0))
        .set("y1", round(a.1))
        .set("x2", round(b.0))
        .set("y2", round(b.1))
        .set("stroke", colour)
        .set("stroke-width", 1.6)
        .set("marker-end", format!("url(#head-{})", kind.class()));
    if let Some(d) = dash {
        l = l.set("stroke-dasharray", d);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_and_cleaned() {
        assert_eq!(fit("hello", 10), "hello");
        assert_eq!(fit("hello world", 6), "hello…");
        assert_eq!(fit("» 我是复读机", 8), "» 我是…");
        assert_eq!(clean("a\nb\x01"), "a\\nb\\x01");
    }
}
