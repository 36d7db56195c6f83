//! `--diagram FILE.svg` and `--html FILE` on a run, and `ipclab diagram`
//! on a saved one: the files are ipclab's own output, like `-o FILE`, not
//! lab steps.
//!
//! Each process of a run writes its own events, so no single process sees
//! them all as they happen. Every event therefore also goes, as a JSON
//! line, to the run's copy: a file with no name (`os::open_copy`) that the
//! forked processes inherit and append whole lines to. When the run is
//! over, the process that started it reads the copy back and draws from it
//! with `diagram`; the copy vanishes when its last descriptor closes,
//! whatever ends the run.

use std::path::{Path, PathBuf};

use crate::diagram::{self, Diagram};

/// The files a run draws into, opened before its first step (so a bad
/// path is refused before anything runs), and its copy.
pub struct Drawing {
    copy: i32,
    svg: Option<(PathBuf, i32)>,
    html: Option<(PathBuf, i32)>,
    /// Only the process that started the run draws.
    pid: u32,
}

impl Drawing {
    /// `None` when neither is asked for; the error is a line and an exit
    /// status (2 for a path that cannot be written).
    pub fn open(
        svg: Option<PathBuf>,
        html: Option<PathBuf>,
    ) -> Result<Option<Drawing>, (String, u8)> {
        if svg.is_none() && html.is_none() {
            return Ok(None);
        }
        let open = |flag: &str, p: Option<PathBuf>| match p {
            None => Ok(None),
            Some(p) => match crate::os::open_high(&p) {
                Ok(fd) => Ok(Some((p, fd))),
                Err(e) => Err((format!("{flag} {}: {e}", p.display()), 2)),
            },
        };
        let svg = open("--diagram", svg)?;
        let html = open("--html", html)?;
        let copy = crate::os::open_copy().map_err(|e| {
            (
                format!(
                    "--diagram/--html: cannot make the run's temporary copy in {}: {e}",
                    std::env::temp_dir().display()
                ),
                1,
            )
        })?;
        Ok(Some(Drawing {
            copy,
            svg,
            html,
            pid: std::process::id(),
        }))
    }

    /// The descriptor every process writes the run's JSON lines to.
    pub fn copy_fd(&self) -> i32 {
        self.copy
    }

    /// Draws the run from its copy into the files, titled `title`; returns
    /// what went wrong, one line each.
    pub fn finish(self, title: &str) -> Vec<String> {
        if std::process::id() != self.pid {
            return Vec::new();
        }
        let text = crate::os::read_copy(self.copy)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        crate::os::close_fd(self.copy);
        let mut errors = Vec::new();
        let d = diagram::from_jsonl(&text, title);
        for (out, body) in [(self.svg, svg as Render), (self.html, html)] {
            let Some((path, fd)) = out else { continue };
            match &d {
                Ok(d) => {
                    if let Err(e) = crate::os::write_fd(fd, body(d).as_bytes()) {
                        errors.push(format!("{}: {e}", path.display()));
                    }
                }
                Err(e) => errors.push(format!("{}: nothing drawn: {e}", path.display())),
            }
            crate::os::close_fd(fd);
        }
        errors
    }
}

type Render = fn(&Diagram) -> String;

fn svg(d: &Diagram) -> String {
    diagram::svg(d)
}

fn html(d: &Diagram) -> String {
    diagram::html(d)
}

/// `ipclab diagram RUN.jsonl [-o FILE.svg] [--html FILE]`: the error is one
/// line (bad usage or bad input: exit status 2).
pub fn draw_saved(
    run: &Path,
    svg_out: Option<&Path>,
    html_out: Option<&Path>,
) -> Result<(), String> {
    let fail = |msg: String| format!("diagram {}: {msg}", run.display());
    if svg_out.is_none() && html_out.is_none() {
        return Err(fail(
            "say where to draw it: -o FILE.svg, --html FILE, or both".into(),
        ));
    }
    let text = match std::fs::read(run) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    let name = run.file_name().map_or_else(
        || run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let d = diagram::from_jsonl(&text, &name).map_err(fail)?;
    for (path, body) in [(svg_out, svg as Render), (html_out, html)] {
        if let Some(p) = path {
            std::fs::write(p, body(&d)).map_err(|e| format!("diagram: {}: {e}", p.display()))?;
        }
    }
    Ok(())
}
