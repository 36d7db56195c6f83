//! Man pages from the CLI definition (clap_mangen), one per command —
//! `ipclab(1)`, `ipclab-tour(1)`, `ipclab-tcp-server(1)` … — with the
//! sections a man reader looks for: EXIT STATUS, ENVIRONMENT, EXAMPLES,
//! SEE ALSO. Not a lab: no syscall steps.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use roff::{bold, italic, roman, Roff};

use crate::cli::Cli;

/// Every page: (file name, roff text), the main page first.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut out = Vec::new();
    collect(&root, true, &mut out);
    out
}

fn collect(cmd: &clap::Command, is_root: bool, out: &mut Vec<(String, Vec<u8>)>) {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    // Each section by itself, so ours can follow clap's.
    let rendered = (|| -> std::io::Result<()> {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut page)?;
        }
        if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
            man.render_subcommands_section(&mut page)?;
        }
        if cmd.get_after_help().is_some() {
            man.render_extra_section(&mut page)?;
        }
        page.write_all(extra(is_root).render().as_bytes())?;
        Ok(())
    })();
    if rendered.is_ok() {
        out.push((man.get_filename(), page));
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, false, out);
    }
}

/// EXIT STATUS, ENVIRONMENT, EXAMPLES (main page) and SEE ALSO.
fn extra(is_root: bool) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"])
        .text([roman("0 success; 1 the experiment failed (a syscall failed, a peer misbehaved, a privilege is missing, the trace could not be written); 2 bad usage, with one line naming the value and what is valid; 128+N stopped by signal N (SIGHUP 129, SIGINT 130, SIGTERM 143) after cleaning up. A closed stdout (| head) ends quietly with 0.")]);
    if is_root {
        r.control("SH", ["ENVIRONMENT"])
            .control("TP", [])
            .text([bold("NO_COLOR")])
            .text([roman("When set and not empty, no colour (colour is also off when stdout is not a terminal).")])
            .control("TP", [])
            .text([bold("TMPDIR")])
            .text([roman("Where the FIFO and other labs make their private directory (default /tmp).")])
            .control("TP", [])
            .text([bold("SUDO_UID"), roman(", "), bold("SUDO_GID")])
            .text([roman("Under sudo, ping and sniff open their socket as root, then give root back to this user and check with getresuid, getresgid and capget that nothing is left. Both or neither must be set.")]);
        r.control("SH", ["EXAMPLES"]);
        for (cmd, what) in [
            (
                "ipclab tour",
                "every experiment the privileges allow, then a summary",
            ),
            (
                "ipclab pipe --sigpipe",
                "EPIPE, then a child killed by SIGPIPE",
            ),
            (
                "ipclab -tt -e trace=%network tcp demo",
                "the TCP demo, network calls only, with wall-clock times",
            ),
            (
                "ipclab tcp server & ipclab tcp client --send hello --send q",
                "the notes' repeater in two processes",
            ),
            (
                "ipclab --format json -c udp demo",
                "JSON lines and strace's -c table",
            ),
            (
                "sudo ipclab ping -c 3 127.0.0.1",
                "a raw ICMP socket, then root given back",
            ),
            (
                "ipclab errata",
                "each mistake in the notes' programs, shown by a real run",
            ),
            (
                "ipclab rpc demo",
                "remoteAdd over ONC RPC, then at-least-once, at-most-once and exactly-once across a crash",
            ),
            (
                "ipclab -q bench ipc --svg ipc.svg",
                "latency and bandwidth of every mechanism, and a chart",
            ),
            (
                "ipclab bench echo --target 127.0.0.1:8989",
                "load any echo server, every reply byte checked",
            ),
            (
                "ipclab --diagram pipe.svg pipe",
                "the pipe lab, and its sequence diagram: a lane per process, arrows for the bytes",
            ),
            (
                "ipclab --html tour.html tour",
                "the whole tour as one self-contained page to open in a browser",
            ),
        ] {
            r.control("TP", []).text([bold(cmd)]).text([roman(what)]);
        }
    }
    r.control("SH", ["SEE ALSO"]).text([
        italic("strace"),
        roman("(1), "),
        italic("ping"),
        roman("(8), "),
        italic("tcpdump"),
        roman("(8), "),
        italic("rpcinfo"),
        roman("(8), "),
        italic("pipe"),
        roman("(7), "),
        italic("fifo"),
        roman("(7), "),
        italic("socket"),
        roman("(7), "),
        italic("raw"),
        roman("(7), "),
        italic("packet"),
        roman("(7), "),
        italic("signal"),
        roman("(7)"),
    ]);
    r
}

/// Writes every page into `dir/man1/` (made if missing); returns their paths.
pub fn install(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let man1 = dir.join("man1");
    std::fs::create_dir_all(&man1)?;
    let mut written = Vec::new();
    for (name, text) in pages() {
        let path = man1.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// The page of `ipclab SUB…` (the main page for none), if it exists.
pub fn page(sub: &[String]) -> Option<Vec<u8>> {
    let want = std::iter::once("ipclab".to_string())
        .chain(sub.iter().cloned())
        .collect::<Vec<_>>()
        .join("-")
        + ".1";
    pages()
        .into_iter()
        .find(|(n, _)| *n == want)
        .map(|(_, t)| t)
}
