//! Sequence diagrams of a run: one lane per process, one box per syscall,
//! arrows for the bytes, connections, forks, exits and signals that pass
//! between processes — as an SVG file (`--diagram`, `ipclab diagram`) or
//! a self-contained HTML report (`--html`).
//!
//! Everything here is pure: it reads a run's JSON lines (the README's
//! schema, the same whether saved by `--format json` or collected by
//! `--diagram` from every process of a run) and returns text. It makes no
//! syscall and no step; `main` writes the files.

mod arrows;
pub mod html;
pub mod input;
pub mod model;
mod order;
pub mod picture;
mod tables;

pub use model::Diagram;

/// The diagram of a run's JSON lines, under `title`. The error is one
/// line saying what is wrong with the input.
pub fn from_jsonl(text: &str, title: &str) -> Result<Diagram, String> {
    let records = input::parse(text)?;
    Ok(Diagram::build(records, title))
}

/// The diagram as an SVG document (every section, stacked).
pub fn svg(d: &Diagram) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&picture::document(d).to_string());
    s.push('\n');
    s
}

/// The diagram as a self-contained HTML report.
pub fn html(d: &Diagram) -> String {
    html::report(d)
}
