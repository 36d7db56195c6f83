//! Parse the CLI → check it into a lab's config (`plan`) → build the
//! Recorder → run the experiment → exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use ipclab::cli::{Cli, Command, Format};
use ipclab::error::{Error, Result};
use ipclab::lab::sniff;
use ipclab::render::drawing::Drawing;
use ipclab::sys::signal;
use ipclab::trace::{Recorder, TraceOptions};

mod plan;

use plan::{plan, sniff_proto};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let g = &cli.global;
    let is_tool = matches!(
        cli.command,
        Command::Completions { .. } | Command::Man { .. } | Command::Diagram { .. }
    );
    if is_tool
        && (g.fds
            || g.step
            || g.count
            || g.timestamps > 0
            || g.relative
            || !g.expr.is_empty()
            || g.output.is_some()
            || g.diagram.is_some()
            || g.html.is_some()
            || g.lanes)
    {
        eprintln!("ipclab: the trace options (--fds, --step, -t, -r, -e, -o, -c, --diagram, --html, --lanes) do not apply to `man`, `completions` and `diagram`, which make no syscall steps");
        return ExitCode::from(2);
    }
    let drawn = g.diagram.is_some() || g.html.is_some();
    if drawn && (g.quiet || g.count) {
        eprintln!("ipclab: --diagram and --html draw the steps, which --quiet and -c leave out: use one or the other");
        return ExitCode::from(2);
    }
    let filter = match ipclab::trace::filter::Filter::parse(&g.expr) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(2);
        }
    };
    let json = g.format == Format::Json;
    let to_tty = g.output.is_none() && std::io::stdout().is_terminal();
    let lanes = match lanes_width(g.lanes, json) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let opts = TraceOptions {
        json,
        quiet: g.quiet,
        fds: g.fds,
        step: g.step,
        color: !json
            && !g.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && to_tty,
        timestamps: g.timestamps,
        relative: g.relative,
        filter,
        count_table: g.count,
        width: if lanes.is_some() {
            lanes
        } else if to_tty && !json {
            ipclab::os::terminal_width()
        } else {
            None
        },
        objects: json || drawn,
        copy: None,
        lanes: lanes.is_some(),
    };
    ipclab::trace::names::set_strsize(g.strsize as usize);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ipclab", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { install, command } => return man_command(install.as_deref(), &command),
        Command::Diagram { run, output, html } => {
            return diagram_command(&run, output.as_deref(), html.as_deref())
        }
        Command::Sniff(a) if a.dump > 0 => {
            if drawn {
                eprintln!("ipclab: sniff -d prints the filter's program and makes no syscall step: --diagram and --html would have nothing to draw");
                return ExitCode::from(2);
            }
            return dump_filter(&a, opts);
        }
        _ => {}
    }
    // Bad input is refused before the first syscall step.
    let job = match plan(cli.command) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    if let Some(path) = &cli.global.output {
        if let Err(e) = ipclab::os::open_output(path) {
            eprintln!(
                "{}",
                one_line(&format!("ipclab: -o {}: {e}", path.display()))
            );
            return ExitCode::from(2);
        }
    }
    // The diagram files are opened (and bad paths refused) before the
    // first step; the copy every process writes its events to is made now.
    let mut opts = opts;
    let drawing = match Drawing::open(cli.global.diagram, cli.global.html) {
        Ok(d) => d,
        Err((e, code)) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(code);
        }
    };
    opts.copy = drawing.as_ref().map(Drawing::copy_fd);
    let mut rec = Recorder::new(opts);
    // Held and caught before the lab makes anything it would have to clean up.
    let result = match signal::hold_stops(&mut rec) {
        Ok(()) => job(&mut rec),
        Err(e) => Err(e.into()),
    };
    if let Some(d) = drawing {
        for e in d.finish(&command_title()) {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
        }
    }
    exit_code(&rec, result)
}

/// The width `--lanes` has (the terminal's, or COLUMNS when stdout is not
/// a terminal), or `None` (with a note) when it cannot be used.
fn lanes_width(asked: bool, json: bool) -> std::result::Result<Option<usize>, ExitCode> {
    if !asked {
        return Ok(None);
    }
    if json {
        eprintln!("ipclab: --lanes is a text format: drop --format json");
        return Err(ExitCode::from(2));
    }
    let width = ipclab::os::terminal_width().or_else(|| {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
    });
    match width {
        Some(w) if w >= 120 => Ok(Some(w)),
        Some(w) => {
            eprintln!("ipclab: --lanes needs 120 columns or more and this terminal has {w}: showing the usual text instead");
            Ok(None)
        }
        None => {
            eprintln!("ipclab: --lanes needs to know the width (stdout is not a terminal; set COLUMNS=120 or more): showing the usual text instead");
            Ok(None)
        }
    }
}

/// `ipclab tcp demo`: the command's words, without options, for the
/// diagram's title.
fn command_title() -> String {
    let mut words = vec!["ipclab".to_string()];
    let Ok(m) = Cli::command().try_get_matches() else {
        return words.join(" ");
    };
    let mut at = m.subcommand();
    while let Some((name, sub)) = at {
        words.push(name.to_string());
        at = sub.subcommand();
    }
    words.join(" ")
}

/// `ipclab diagram RUN.jsonl [-o FILE.svg] [--html FILE]`.
fn diagram_command(
    run: &std::path::Path,
    svg: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
) -> ExitCode {
    match ipclab::render::drawing::draw_saved(run, svg, html) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::from(2)
        }
    }
}

/// `ipclab man [--install DIR] [COMMAND…]`.
fn man_command(install: Option<&std::path::Path>, command: &[String]) -> ExitCode {
    use std::io::Write;
    if let Some(dir) = install {
        return match ipclab::man::install(dir) {
            Ok(paths) => {
                println!(
                    "{} pages written to {}; read them with: MANPATH={}: man ipclab",
                    paths.len(),
                    dir.join("man1").display(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "{}",
                    one_line(&format!("ipclab: man --install {}: {e}", dir.display()))
                );
                ExitCode::FAILURE
            }
        };
    }
    let Some(page) = ipclab::man::page(command) else {
        eprintln!(
            "{}",
            one_line(&format!(
                "ipclab: no man page for `ipclab {}`; try `ipclab man` or `ipclab man tcp server`",
                command.join(" ")
            ))
        );
        return ExitCode::from(2);
    };
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::FAILURE
        }
    }
}

/// The exit status: 0, 1 (the experiment failed, or stdout could not be
/// written), 2 (bad usage), 128+N (a stop signal ended the run after its
/// cleanup). A closed stdout (`| head`) is not a failure.
fn exit_code(rec: &Recorder, result: Result<()>) -> ExitCode {
    if let Some(e) = rec.output_failure() {
        eprintln!("ipclab: cannot write the trace to stdout: {e}");
        return ExitCode::FAILURE;
    }
    let stopped = signal::stop_pending();
    if rec.output_broken() && stopped.is_none() {
        return ExitCode::SUCCESS;
    }
    match (result, stopped) {
        (Err(e @ Error::Usage(_)), _) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::from(2)
        }
        (_, Some(sig)) => {
            eprintln!("ipclab: {}", Error::Interrupted(sig));
            ExitCode::from((128 + sig) as u8)
        }
        (Ok(()), None) => ExitCode::SUCCESS,
        (Err(e), None) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `sniff -d`: the filter's program as `tcpdump -d` (`-dd`, `-ddd`) prints
/// it, on stdout and nothing else, so the two can be diffed; no capture, no
/// syscall step. With `--format json`, one message line per instruction.
fn dump_filter(a: &ipclab::cli::SniffArgs, opts: TraceOptions) -> ExitCode {
    use ipclab::packet::filter;
    let prog = match sniff::build_filter(a.proto.map(sniff_proto), &a.filter) {
        Ok(Some(f)) => f.program,
        // No expression: tcpdump's accept-everything program.
        Ok(None) => vec![filter::Insn::new(0x06, 0, 0, filter::SNAPLEN)],
        Err(e) => {
            eprintln!("{}", one_line(&format!("ipclab: {e}")));
            return ExitCode::from(2);
        }
    };
    let lines = filter::dump(&prog, a.dump);
    if opts.json {
        let mut rec = Recorder::new(opts);
        for l in &lines {
            rec.message(l);
        }
        return exit_code(&rec, Ok(()));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    match std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("ipclab: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Prints clap's verdict on bad arguments as one line (what was wrong, what
/// is valid) and exits 2; help and version go out as clap formats them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // Nothing asked for: one line, not the whole help on stderr.
        let words: Vec<String> = std::env::args().skip(1).collect();
        let cmd = std::iter::once("ipclab".to_string())
            .chain(words)
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!(
            "{}",
            one_line(&format!(
                "ipclab: `{cmd}` needs a command; try `ipclab tour`, or see `{cmd} --help`"
            ))
        );
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let line: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    let mut joined = String::new();
    for part in line {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(part);
    }
    eprintln!("{}", one_line(&format!("ipclab: {joined} (see --help)")));
    ExitCode::from(2)
}

/// An error line as one line of plain text: control characters from the
/// user's own input (a newline in a path, an escape sequence in a host name)
/// are escaped as strace escapes them, never sent to the terminal raw.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:o}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn error_lines_escape_control_characters() {
        assert_eq!(one_line("no\ndir/x\x1b[31m"), "no\\ndir/x\\33[31m");
        assert_eq!(one_line("复读机"), "复读机");
    }
}
