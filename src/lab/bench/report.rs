//! The bench's results as tables (text and JSON come from `render`) and as
//! an SVG chart drawn with plotters, written to a file with traced calls.

use std::path::Path;

use nix::fcntl::OFlag;
use plotters::prelude::*;

use super::ipc::{IpcConfig, IpcRow};
use crate::error::{Error, Result};
use crate::render::event::{Cell, Column, Table};
use crate::sys::file;
use crate::trace::Recorder;

/// One panel of a chart: horizontal bars, one per row.
pub struct Panel {
    pub title: String,
    /// (label, value, optional whisker end such as the p99).
    pub bars: Vec<(String, f64, Option<f64>)>,
}

fn col(key: &'static str, title: &'static str) -> Column {
    Column { key, title }
}

/// The machine, as a one-row table (JSON readers get it as data).
pub fn machine_table(m: &super::Machine, placement: &str) -> Table {
    Table {
        name: "machine".into(),
        title: "machine".into(),
        columns: vec![
            col("cpus", "CPUs"),
            col("kernel", "kernel"),
            col("cpu_model", "CPU"),
            col("placement", "placement"),
        ],
        rows: vec![vec![
            Cell::Int(m.cpus as u64),
            Cell::Text(m.kernel.clone()),
            Cell::Text(m.cpu_model.clone()),
            Cell::Text(placement.to_string()),
        ]],
        bars: None,
        notes: vec![],
    }
}

/// The latency and bandwidth tables of `bench ipc`.
pub fn ipc_tables(cfg: &IpcConfig, rows: &[IpcRow]) -> Vec<Table> {
    let (pc, cc) = rows.last().map_or((None, None), |r| r.cpus);
    let placement = super::placement(cfg.pin, pc, cc);
    let batch = rows.first().map_or(1, |r| r.latency.batch);
    let lat = Table {
        name: "ipc-latency".into(),
        title: format!("round trips of {} bytes (RPC: NULL calls), µs", cfg.size),
        columns: vec![
            col("mechanism", "mechanism"),
            col("median_us", "median"),
            col("p99_us", "p99"),
            col("mean_us", "mean"),
            col("stddev_us", "stddev"),
            col("spread_pct", "spread %"),
            col("round_trips", "trips"),
        ],
        rows: rows
            .iter()
            .map(|r| {
                let s = r.latency.spread;
                vec![
                    Cell::Text(r.mechanism.name().into()),
                    Cell::Num(s.median, 2),
                    Cell::Num(s.p99, 2),
                    Cell::Num(s.mean, 2),
                    Cell::Num(s.stddev, 2),
                    Cell::Num(r.latency.repeat_spread, 1),
                    Cell::Int(r.latency.trips),
                ]
            })
            .collect(),
        bars: Some(1),
        notes: vec![
            format!(
                "µs per round trip, timed in batches (about {batch} trips each); median and p99 over the batches; spread: (max − min) / median of the {} repeats' medians",
                cfg.repeats
            ),
            placement.clone(),
        ],
    };
    let streams: Vec<&IpcRow> = rows.iter().filter(|r| r.bandwidth.is_some()).collect();
    let mut tables = vec![machine_table(&cfg.machine, &placement), lat];
    if !streams.is_empty() {
        tables.push(Table {
            name: "ipc-bandwidth".into(),
            title: "streaming, MB/s (10⁶ bytes per second)".into(),
            columns: vec![
                col("mechanism", "mechanism"),
                col("mb_s", "MB/s"),
                col("chunk", "chunk"),
                col("spread_pct", "spread %"),
                col("bytes", "bytes"),
            ],
            rows: streams
                .iter()
                .filter_map(|r| {
                    let b = r.bandwidth?;
                    Some(vec![
                        Cell::Text(r.mechanism.name().into()),
                        Cell::Num(b.mb_s, 0),
                        Cell::Int(b.chunk as u64),
                        Cell::Num(b.repeat_spread, 1),
                        Cell::Int(b.bytes),
                    ])
                })
                .collect(),
            bars: Some(1),
            notes: vec![format!(
                "one writer, one reader; each write is one chunk; timed until the reader says it has every byte; median of {} repeats (udp and rpc have no stream: no flow control, or calls rather than bytes)",
                cfg.repeats
            )],
        });
    }
    tables
}

/// The chart of `bench ipc`: latency above, bandwidth below.
pub fn ipc_chart(cfg: &IpcConfig, rows: &[IpcRow]) -> Vec<Panel> {
    let mut panels = vec![Panel {
        title: format!("round trip of {} bytes, µs (median; line to p99)", cfg.size),
        bars: rows
            .iter()
            .map(|r| {
                (
                    r.mechanism.name().to_string(),
                    r.latency.spread.median,
                    Some(r.latency.spread.p99),
                )
            })
            .collect(),
    }];
    let bw: Vec<(String, f64, Option<f64>)> = rows
        .iter()
        .filter_map(|r| Some((r.mechanism.name().to_string(), r.bandwidth?.mb_s, None)))
        .collect();
    if !bw.is_empty() {
        panels.push(Panel {
            title: format!("streaming, MB/s ({} KiB writes)", cfg.chunk / 1024),
            bars: bw,
        });
    }
    panels
}

/// Draws the panels, one above the other, as an SVG document.
///
/// # Errors
/// Only if plotters fails to lay the chart out (a drawing error).
pub fn svg(panels: &[Panel]) -> std::result::Result<String, String> {
    let rows: usize = panels.iter().map(|p| p.bars.len().max(1)).sum();
    let height = (60 * panels.len() + 34 * rows + 40) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let weights: Vec<u32> = panels
            .iter()
            .map(|p| (60 + 34 * p.bars.len().max(1)) as u32)
            .collect();
        let mut areas = Vec::new();
        let mut rest = root.clone();
        for w in &weights {
            let (top, bottom) = rest.split_vertically(*w);
            areas.push(top);
            rest = bottom;
        }
        for (area, p) in areas.iter().zip(panels) {
            draw_panel(area, p)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_panel(area: &Area<'_>, p: &Panel) -> std::result::Result<(), String> {
    let e = |e: plotters::drawing::DrawingAreaErrorKind<_>| e.to_string();
    let n = p.bars.len().max(1);
    let max = p
        .bars
        .iter()
        .map(|(_, v, w)| w.unwrap_or(*v).max(*v))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let labels: Vec<String> = p.bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(96)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .label_style(("sans-serif", 15))
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            // The first row on top, as in the table.
            SegmentValue::CenterOf(i) if *i < n => {
                labels.get(n - 1 - *i).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .x_label_formatter(&|x| {
            if max > 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.1}")
            }
        })
        .draw()
        .map_err(e)?;
    let colour = RGBColor(0x2b, 0x6c, 0xb0);
    chart
        .draw_series(p.bars.iter().enumerate().map(|(i, (_, v, _))| {
            let mut r = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                colour.filled(),
            );
            r.set_margin(5, 5, 0, 0);
            r
        }))
        .map_err(e)?;
    chart
        .draw_series(p.bars.iter().enumerate().filter_map(|(i, (_, v, w))| {
            let w = (*w)?;
            Some(PathElement::new(
                vec![
                    (*v, SegmentValue::CenterOf(i)),
                    (w, SegmentValue::CenterOf(i)),
                ],
                BLACK.stroke_width(2),
            ))
        }))
        .map_err(e)?;
    Ok(())
}

/// Writes the chart to `path` with traced calls: a new file (never through
/// a symlink, never over an existing file's other links), one write, close.
///
/// # Errors
/// The file cannot be created or written.
pub fn write_svg(rec: &mut Recorder, path: &Path, panels: &[Panel]) -> Result<()> {
    let doc = svg(panels).map_err(|e| Error::protocol(format!("drawing the chart failed: {e}")))?;
    rec.note(format!(
        "the chart, {} bytes of SVG drawn by plotters",
        doc.len()
    ));
    let fd = file::openat_mode(
        rec,
        path,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        0o644,
    )
    .map_err(|e| Error::SysHint(e, format!("cannot write the chart to {}", path.display())))?;
    let mut off = 0;
    let bytes = doc.as_bytes();
    while off < bytes.len() {
        match file::write(rec, std::os::fd::AsFd::as_fd(&fd), &bytes[off..]) {
            Ok(n) => off += n,
            Err(e) => {
                let _ = file::close(rec, fd);
                return Err(e.into());
            }
        }
    }
    file::close(rec, fd)?;
    rec.message(format!("chart written to {}", path.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_a_bar_per_row_and_the_labels() {
        let panels = vec![Panel {
            title: "µs".into(),
            bars: vec![("pipe".into(), 4.0, Some(6.0)), ("tcp".into(), 12.0, None)],
        }];
        let doc = svg(&panels).expect("drawn");
        assert!(doc.starts_with("<svg"), "{doc}");
        assert!(doc.contains("\npipe\n") && doc.contains("\ntcp\n"), "{doc}");
        assert!(doc.matches("<rect").count() >= 3);
    }

    #[test]
    fn svg_of_nothing_is_still_a_document() {
        let doc = svg(&[Panel {
            title: "empty".into(),
            bars: vec![],
        }])
        .expect("drawn");
        assert!(doc.contains("</svg>"));
    }
}
