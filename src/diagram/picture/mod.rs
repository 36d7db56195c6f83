//! The SVG of a diagram, built with the `svg` crate: lanes left to right,
//! time downward, one box per syscall, arrows between lanes.
//!
//! Elements carry classes and data attributes that tests and the HTML
//! report look for: `g.lane[data-pid]` (a lane's header, once per lane),
//! `g.box[data-seq]` (a step), `g.arrow.data[data-from][data-to]` (the
//! step numbers at both ends), `rect.blocked`.

mod parts;

use svg::node::element::{Group, Rectangle, Title};
use svg::Document;

use crate::diagram::model::{Arrow, ArrowKind, Diagram, End, Item, Kind, LaneKey, Section};
use parts::*;

/// The whole run in one picture: the legend, then each section.
pub fn document(d: &Diagram) -> Document {
    let width = d
        .sections
        .iter()
        .map(|s| width_for(s.lanes.len()))
        .fold(760.0, f64::max);
    let (legend, legend_h) = legend(width);
    let title_y = legend_h + 26.0;
    let mut body = Group::new()
        .add(legend)
        .add(text(MARGIN, title_y, 16.0, INK, &d.title).set("font-weight", "bold"));
    let mut top = title_y + 12.0;
    for (i, s) in d.sections.iter().enumerate() {
        let (g, h) = section(s, i, top);
        body = body.add(g);
        top += h;
    }
    frame(width, top + MARGIN, body)
}

/// One section alone (the HTML report shows each in its own place).
pub fn section_document(s: &Section, index: usize) -> Document {
    let (g, h) = section(s, index, MARGIN);
    frame(width_for(s.lanes.len()), h + 2.0 * MARGIN, g)
}

/// The legend alone.
pub fn legend_document(width: f64) -> Document {
    let (g, h) = legend(width);
    frame(width, h + MARGIN, g)
}

fn width_for(lanes: usize) -> f64 {
    2.0 * MARGIN + GUTTER + lanes.max(1) as f64 * LANE_W
}

fn frame(width: f64, height: f64, body: Group) -> Document {
    let (w, h) = (width.ceil(), height.ceil());
    Document::new()
        .set("width", w)
        .set("height", h)
        .set("viewBox", (0, 0, w, h))
        .set("font-family", FONT)
        .add(svg::node::element::Style::new(
            ".box { cursor: pointer } .box:hover rect { stroke-width: 2.5 } \
             .box.selected rect { stroke: #0969da; stroke-width: 3 } \
             .arrow:hover line { stroke-width: 3 }",
        ))
        .add(markers())
        .add(
            Rectangle::new()
                .set("class", "background")
                .set("width", w)
                .set("height", h)
                .set("fill", "#ffffff"),
        )
        .add(body)
}

/// Where things are in one section, which starts at `top`.
struct Geometry {
    top: f64,
    rows: usize,
    /// Rows per band: at most BAND_ROWS, the bands as even as they can be.
    per_band: usize,
}

impl Geometry {
    fn new(top: f64, rows: usize) -> Self {
        let bands = rows.div_ceil(BAND_ROWS).max(1);
        Geometry {
            top,
            rows,
            per_band: rows.div_ceil(bands).max(1),
        }
    }

    fn bands(&self) -> usize {
        self.rows.div_ceil(self.per_band).max(1)
    }

    fn band(&self, row: usize) -> usize {
        row / self.per_band
    }

    fn band_rows(&self, b: usize) -> std::ops::Range<usize> {
        b * self.per_band..((b + 1) * self.per_band).min(self.rows)
    }

    /// The top of band `b` (its lane headers).
    fn band_top(&self, b: usize) -> f64 {
        self.top + TITLE_H + b as f64 * (HEAD_H + self.per_band as f64 * ROW_H + BAND_GAP)
    }

    /// Where band `b`'s rows start and end.
    fn band_body(&self, b: usize) -> (f64, f64) {
        let start = self.band_top(b) + HEAD_H;
        let n = self.band_rows(b).len().max(1);
        (start, start + n as f64 * ROW_H)
    }

    /// The middle of row `row`.
    fn y(&self, row: usize) -> f64 {
        let b = self.band(row);
        self.band_body(b).0 + (row - b * self.per_band) as f64 * ROW_H + ROW_H / 2.0
    }

    fn height(&self) -> f64 {
        self.band_body(self.bands() - 1).1 - self.top + BAND_GAP
    }

    fn lane_x(lane: usize) -> f64 {
        MARGIN + GUTTER + lane as f64 * LANE_W
    }

    fn center(lane: usize) -> f64 {
        Self::lane_x(lane) + LANE_W / 2.0
    }
}

/// One section: its title, bands of lanes and items, and its arrows.
fn section(s: &Section, index: usize, top: f64) -> (Group, f64) {
    let geo = Geometry::new(top, s.items.len());
    let mut title = s.name.clone();
    if !s.title.is_empty() {
        title.push_str(" — ");
        title.push_str(&s.title);
    }
    let chars = ((width_for(s.lanes.len()) - 2.0 * MARGIN) / 7.8) as usize;
    let mut g = Group::new()
        .set("class", "section")
        .set("id", format!("section-{index}"))
        .set("data-index", index)
        .add(text(MARGIN, top + 24.0, 13.0, INK, &fit(&title, chars)).set("font-weight", "bold"));
    if let Some(r) = s.result.as_deref().filter(|r| *r != "ok") {
        g = g.add(text(MARGIN, top + 38.0, 11.0, MUTED, &fit(r, chars)));
    }
    let mut headed = vec![false; s.lanes.len()];
    for b in 0..geo.bands() {
        g = g.add(band(s, &geo, b, &mut headed));
    }
    for (row, it) in s.items.iter().enumerate() {
        g = g.add(item(s, &geo, index, row, it));
    }
    let mut arrows = Group::new().set("class", "arrows");
    for (n, a) in s.arrows.iter().enumerate() {
        arrows = arrows.add(arrow(s, &geo, index, n, a));
    }
    (g.add(arrows), geo.height())
}

/// A band's lane headers and lane lines, and its row numbers.
fn band(s: &Section, geo: &Geometry, b: usize, headed: &mut [bool]) -> Group {
    let rows = geo.band_rows(b);
    let mut g = Group::new().set("class", "band").set("data-band", b);
    let top = geo.band_top(b);
    for (l, lane) in s.lanes.iter().enumerate() {
        let (Some(first), Some(last)) = (lane.first, lane.last) else {
            continue;
        };
        if first >= rows.end || last < rows.start {
            continue;
        }
        let x = Geometry::lane_x(l) + 10.0;
        let (class, label) = if headed[l] {
            ("lane-cont", format!("{} (continued)", lane.label()))
        } else {
            headed[l] = true;
            ("lane", lane.label())
        };
        let mut head = Group::new().set("class", class);
        if let LaneKey::Pid(p) = lane.key {
            head = head.set("data-pid", p);
        } else {
            head = head.set("data-host", lane.label());
        }
        let from = if first >= rows.start {
            geo.y(first) - ROW_H / 2.0
        } else {
            top + HEAD_H - 4.0
        };
        let to = if last < rows.end {
            geo.y(last)
        } else {
            geo.band_body(b).1
        };
        let dash = matches!(lane.key, LaneKey::Host(_));
        let mut line = svg::node::element::Line::new()
            .set("x1", round(Geometry::center(l)))
            .set("x2", round(Geometry::center(l)))
            .set("y1", round(from))
            .set("y2", round(to))
            .set("stroke", LANE_LINE)
            .set("stroke-width", 1.5);
        if dash {
            line = line.set("stroke-dasharray", "4 4");
        }
        head = head
            .add(
                Rectangle::new()
                    .set("x", round(x))
                    .set("y", round(top + 2.0))
                    .set("width", LANE_W - 20.0)
                    .set("height", HEAD_H - 8.0)
                    .set("rx", 5)
                    .set("fill", "#ddf4ff")
                    .set("stroke", "#54aeff"),
            )
            .add(text(x + 8.0, top + 18.0, 12.0, INK, &fit(&label, 31)).set("font-weight", "bold"))
            .add(text(x + 8.0, top + 33.0, 11.0, MUTED, &fit(&lane.role, 33)))
            .add(line);
        g = g.add(head);
    }
    for row in rows {
        if let Some(st) = s.items[row].step() {
            g = g.add(text(
                MARGIN,
                geo.y(row) + 4.0,
                10.0,
                MUTED,
                &format!("#{}", st.seq),
            ));
        }
    }
    g
}

/// `write(4, "hello", 5) = 5`, cut to fit a box.
fn box_label(st: &crate::diagram::input::StepRec) -> String {
    let room = ((BOX_W - 12.0) / CHAR_W) as usize;
    let ret = match (&st.errno, st.ret) {
        (Some(e), _) => format!(" = -1 {e}"),
        (None, Some(r)) => format!(" = {}", st.ret_text(r)),
        (None, None) => " = ?".to_string(),
    };
    let head = st.syscall.chars().count() + 2 + ret.chars().count();
    // Addresses as a person says them: 127.0.0.1:8989, the socket's path.
    let args = st
        .args
        .iter()
        .map(|a| {
            if let Some(addr) = crate::diagram::arrows::sockaddr(a) {
                addr.to_string()
            } else if let Some(p) = a.split("sun_path=").nth(1) {
                p.trim_end_matches('}').to_string()
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let args = if head >= room {
        "…".to_string()
    } else {
        fit(&args, room - head)
    };
    fit(&format!("{}({args}){ret}", st.syscall), room)
}

fn item(s: &Section, geo: &Geometry, index: usize, row: usize, it: &Item) -> Group {
    let y = geo.y(row);
    let cx = Geometry::center(it.lane);
    let left = cx - BOX_W / 2.0;
    let pid = match s.lanes[it.lane].key {
        LaneKey::Pid(p) => p,
        LaneKey::Host(_) => 0,
    };
    match &it.kind {
        Kind::Step(st) => {
            let (fill, stroke, class) = match (&st.errno, st.provoked) {
                (Some(_), true) => (PROVOKED_FILL, PROVOKED, "box step provoked"),
                (Some(_), false) => (ERR_FILL, ERR, "box step failed"),
                (None, _) => (BOX_FILL, MUTED, "box step"),
            };
            let mut tip = format!("[pid {pid}] {}", st.strace_line());
            if !st.note.is_empty() {
                tip.push('\n');
                tip.push_str(&st.note);
            }
            Group::new()
                .set("class", class)
                .set("id", format!("s{index}-{}", st.seq))
                .set("data-seq", st.seq)
                .set("data-pid", pid)
                .set("data-section", index)
                .add(Title::new(clean(&tip)))
                .add(
                    Rectangle::new()
                        .set("x", round(left))
                        .set("y", round(y - BOX_H / 2.0))
                        .set("width", BOX_W)
                        .set("height", BOX_H)
                        .set("rx", 3)
                        .set("fill", fill)
                        .set("stroke", stroke),
                )
                .add(text(left + 6.0, y + 4.0, 12.0, INK, &box_label(st)))
        }
        Kind::Waiting { reason, until, .. } => {
            let mut g = Group::new()
                .set("class", "waiting")
                .add(Title::new(clean(&format!("[pid {pid}] <{reason}>"))))
                .add(
                    text(
                        left + 6.0,
                        y + 4.0,
                        11.0,
                        PROVOKED,
                        &fit(&format!("… {reason}"), 33),
                    )
                    .set("font-style", "italic"),
                );
            // The blocked interval, cut at band ends.
            let end = until.unwrap_or(row);
            let (x, mut from) = (left - 9.0, y - ROW_H / 2.0 + 3.0);
            for b in geo.band(row)..=geo.band(end) {
                let stop = if b == geo.band(end) {
                    geo.y(end) - BOX_H / 2.0
                } else {
                    geo.band_body(b).1
                };
                g = g.add(
                    Rectangle::new()
                        .set("class", "blocked")
                        .set("x", round(x))
                        .set("y", round(from))
                        .set("width", 6)
                        .set("height", round((stop - from).max(4.0)))
                        .set("fill", BLOCKED),
                );
                from = geo.band_body(b + 1).0;
            }
            g
        }
        Kind::Message(t) => Group::new()
            .set("class", "message")
            .add(Title::new(clean(&format!("[pid {pid}] >> {t}"))))
            .add(text(
                left + 6.0,
                y + 4.0,
                11.0,
                MESSAGE,
                &fit(&format!("» {t}"), 33),
            )),
        Kind::Signal { signal, .. } => Group::new().set("class", "signal").add(text(
            left + 6.0,
            y + 4.0,
            11.0,
            ERR,
            &format!("--- {signal} ---"),
        )),
        Kind::Exit { .. } => {
            let (what, colour) = match &s.lanes[it.lane].end {
                End::Killed(sig) => (format!("+++ killed by {sig} +++"), ERR),
                End::Exited(c) => (format!("+++ exited with {c} +++"), MUTED),
                End::Open => ("+++ exited +++".to_string(), MUTED),
            };
            Group::new()
                .set("class", "exit")
                .add(text(left + 6.0, y + 4.0, 11.0, colour, &what).set("font-weight", "bold"))
        }
    }
}

/// The step number of an arrow's end, when it is a step.
fn seq_at(s: &Section, item: usize) -> String {
    s.items[item]
        .step()
        .map_or(String::new(), |st| st.seq.to_string())
}

fn arrow(s: &Section, geo: &Geometry, index: usize, n: usize, a: &Arrow) -> Group {
    let (l2, r2) = (a.to.lane, a.to.item);
    let host = |l: usize| matches!(s.lanes[l].key, LaneKey::Host(_));
    let (x1, y1, r1) = match a.from {
        Some(f) => {
            let x = if host(f.lane) {
                Geometry::center(f.lane)
            } else if l2 >= f.lane {
                Geometry::center(f.lane) + BOX_W / 2.0
            } else {
                Geometry::center(f.lane) - BOX_W / 2.0
            };
            (x, geo.y(f.item), f.item)
        }
        None => (MARGIN + GUTTER - 6.0, geo.y(r2) - 10.0, r2),
    };
    let from_lane = a.from.map_or(0, |f| f.lane);
    let x2 = if host(l2) {
        Geometry::center(l2)
    } else if a.from.is_none() || from_lane <= l2 {
        Geometry::center(l2) - BOX_W / 2.0
    } else {
        Geometry::center(l2) + BOX_W / 2.0
    };
    let y2 = geo.y(r2);
    let mut class = format!("arrow {}", a.kind.class());
    if a.piece {
        class.push_str(" piece");
    }
    let mut g = Group::new()
        .set("class", class)
        .set("id", format!("a{index}-{n}"))
        .set("data-from", seq_at(s, a.from.map_or(r2, |f| f.item)))
        .set("data-to", seq_at(s, r2));
    if let Some(b) = a.bytes {
        g = g.set("data-bytes", b);
    }
    g = g.add(Title::new(clean(&a.label)));
    let (b1, b2) = (geo.band(r1), geo.band(r2));
    let (mid_x, mid_y) = if b1 == b2 || r1 > r2 {
        g = g.add(arrow_line(a.kind, (x1, y1), (x2, y2)));
        ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
    } else {
        // Into a later band: to the bottom of this one, then on from the top of that one.
        let bottom = geo.band_body(b1).1;
        let top = geo.band_body(b2).0;
        g = g
            .add(arrow_line(a.kind, (x1, y1), (x2, bottom)))
            .add(arrow_line(a.kind, (x1, top), (x2, y2)));
        ((x1 + x2) / 2.0, (y1 + bottom) / 2.0)
    };
    let label = text(
        mid_x,
        mid_y - 4.0,
        10.5,
        arrow_style(a.kind).0,
        &fit(&a.label, 24),
    )
    .set("text-anchor", "middle")
    .set("stroke", "#ffffff")
    .set("stroke-width", 3)
    .set("paint-order", "stroke");
    // Fork and exit arrows end at a lane's first line or start at its
    // `+++ exited` line, which say as much.
    if !matches!(a.kind, ArrowKind::Fork | ArrowKind::Reap) {
        g = g.add(label);
    }
    g
}
