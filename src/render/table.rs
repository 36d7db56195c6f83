//! Tables of measurements (`ipclab bench`): aligned text with a bar chart
//! beside one column, or one JSON object per table.
//!
//! ```text
//! ipc latency: round trips of 32 bytes, both ends on CPU 0
//!   mechanism   median µs  p99 µs  mean µs  stddev  MB/s
//!   pipe             4.91    5.60     4.98    0.21  1843  █████████▏
//!   shm              3.10    3.52     3.14    0.12  4410  █████▊
//! ```

use serde_json::{json, Map, Value};

use super::event::{Cell, Table};

/// Width of the longest bar, in character cells.
const BAR_WIDTH: f64 = 24.0;

/// Eighths of a block, for the bars' last cell.
const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Text(t) => t.clone(),
        Cell::Num(v, d) => format!("{v:.*}", usize::from(*d)),
        Cell::Int(v) => v.to_string(),
        Cell::Missing => "—".to_string(),
    }
}

/// A bar `value / max` of [`BAR_WIDTH`] cells, in eighths.
pub fn bar(value: f64, max: f64) -> String {
    if !(value.is_finite() && max.is_finite()) || value <= 0.0 || max <= 0.0 {
        return String::new();
    }
    let eighths = ((value / max).min(1.0) * BAR_WIDTH * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTIAL[eighths % 8]);
    if s.is_empty() {
        s.push('▏');
    }
    s
}

/// The table as aligned text: text columns to the left, numbers to the right.
pub fn text(t: &Table, color: bool) -> String {
    let (bold, dim, cyan, reset) = if color {
        ("\x1b[1m", "\x1b[2m", "\x1b[36m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    let cells: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let widths: Vec<usize> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .chain(std::iter::once(c.title.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..t.columns.len())
        .map(|i| {
            t.rows
                .iter()
                .all(|r| !matches!(r.get(i), Some(Cell::Text(_))))
        })
        .collect();
    let pad = |s: &str, i: usize| {
        let w = widths[i];
        let n = s.chars().count();
        let fill = " ".repeat(w.saturating_sub(n));
        if numeric[i] {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let mut out = format!("\n{bold}{}{reset}\n", t.title);
    let head: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| pad(c.title, i))
        .collect();
    out.push_str(&format!("  {dim}{}{reset}\n", head.join("  ").trim_end()));
    let max = t.bars.map(|b| {
        t.rows
            .iter()
            .filter_map(|r| r.get(b).and_then(Cell::value))
            .fold(0.0_f64, f64::max)
    });
    for (row, texts) in t.rows.iter().zip(&cells) {
        let line: Vec<String> = texts.iter().enumerate().map(|(i, s)| pad(s, i)).collect();
        let mut l = format!("  {}", line.join("  "));
        if let (Some(b), Some(max)) = (t.bars, max) {
            if let Some(v) = row.get(b).and_then(Cell::value) {
                l.push_str(&format!("  {cyan}{}{reset}", bar(v, max)));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    for n in &t.notes {
        out.push_str(&format!("  {dim}{n}{reset}\n"));
    }
    out
}

/// The table as one JSON object: `{"type":"table","name":…,"rows":[{…}]}`.
pub fn json(t: &Table) -> Value {
    let rows: Vec<Value> = t
        .rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (c, cell) in t.columns.iter().zip(r) {
                let v = match cell {
                    Cell::Text(s) => json!(s),
                    Cell::Num(v, _) if v.is_finite() => json!(v),
                    Cell::Int(v) => json!(v),
                    Cell::Num(..) | Cell::Missing => Value::Null,
                };
                m.insert(c.key.to_string(), v);
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "type": "table",
        "name": t.name,
        "title": t.title,
        "rows": rows,
        "notes": t.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::event::Column;

    fn sample() -> Table {
        Table {
            name: "t".into(),
            title: "latency".into(),
            columns: vec![
                Column {
                    key: "mechanism",
                    title: "mechanism",
                },
                Column {
                    key: "median_us",
                    title: "median µs",
                },
                Column {
                    key: "mb_s",
                    title: "MB/s",
                },
            ],
            rows: vec![
                vec![Cell::Text("pipe".into()), Cell::Num(4.0, 2), Cell::Int(100)],
                vec![Cell::Text("udp".into()), Cell::Num(8.0, 2), Cell::Missing],
            ],
            bars: Some(1),
            notes: vec!["µs per round trip".into()],
        }
    }

    #[test]
    fn text_aligns_and_draws_bars_to_scale() {
        let s = text(&sample(), false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1], "latency");
        assert_eq!(lines[2], "  mechanism  median µs  MB/s");
        assert!(
            lines[3].starts_with("  pipe            4.00   100  "),
            "{s}"
        );
        assert!(
            lines[4].starts_with("  udp             8.00     —  "),
            "{s}"
        );
        let bars = |l: &str| l.chars().filter(|&c| c == '█').count();
        assert_eq!(bars(lines[4]), 24);
        assert_eq!(bars(lines[3]), 12);
        assert_eq!(lines[5], "  µs per round trip");
    }

    #[test]
    fn json_keys_rows_by_column_and_nulls_what_was_not_measured() {
        let v = json(&sample());
        assert_eq!(v["type"], "table");
        assert_eq!(v["rows"][0]["mechanism"], "pipe");
        assert_eq!(v["rows"][0]["median_us"], 4.0);
        assert!(v["rows"][1]["mb_s"].is_null());
    }

    #[test]
    fn bars_never_panic_on_odd_values() {
        assert_eq!(bar(f64::NAN, 1.0), "");
        assert_eq!(bar(1.0, 0.0), "");
        assert_eq!(bar(1e-9, 1.0), "▏");
        assert_eq!(bar(5.0, 1.0).chars().count(), 24);
    }
}
