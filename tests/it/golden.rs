//! Golden tests of the human (text) format. Parent and child interleave for
//! real, so the output is split into one transcript per process (a step line
//! with its note lines stays together); pids, times, pipe inodes and temp
//! paths are normalised, and so is the one race the text shows (whether
//! a writer had closed when ppoll woke). Set `UPDATE_GOLDEN=1` to rewrite the files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::util::run;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden")
}

/// One normalised transcript per process, in order of first appearance.
fn per_process(stdout: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut by_pid: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("[pid ") {
            let pid = rest.split(']').next().unwrap_or("").to_string();
            if !order.contains(&pid) {
                order.push(pid.clone());
            }
            current = Some(pid);
        } else if !line.starts_with(' ') {
            current = None; // section, summary: not a process's transcript
        }
        if let Some(pid) = &current {
            let t = by_pid.entry(pid.clone()).or_default();
            t.push_str(line);
            t.push('\n');
        }
    }
    order
        .iter()
        .map(|pid| {
            let mut text = by_pid.remove(pid).unwrap_or_default();
            for (i, p) in order.iter().enumerate() {
                text = text.replace(p, &format!("P{}", i + 1));
            }
            normalise(&text)
        })
        .collect()
}

fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // Notes are indented to the width of "[pid N] ", which varies with N.
        let mut l = match line.strip_prefix(' ') {
            Some(_) => format!("    {}", line.trim_start()),
            None => line.to_string(),
        };
        // <0.000012> → <T>
        while let Some(i) = l.find(" <0.").or_else(|| l.find(" <1.")) {
            let Some(j) = l[i..].find('>') else { break };
            l.replace_range(i..i + j + 1, " <T>");
        }
        l = replace_numbered(&l, "pipe:[", "]", "pipe:[N]");
        // Whether the writer had closed yet when ppoll woke is a real race:
        // POLLIN alone, or POLLIN|POLLHUP with the note that says so.
        l = l.replace("revents=POLLIN|POLLHUP", "revents=POLLIN");
        l = l.replace(
            "data to read, and the other end has closed",
            "ready to read: the next call returns at once",
        );
        l = replace_numbered(&l, "/tmp/ipclab-", "/", "/tmp/ipclab-DIR/");
        l = replace_numbered(&l, "/tmp/ipclab-", "\"", "/tmp/ipclab-DIR\"");
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

/// Replaces every `start…end` whose middle has no space with `with`.
fn replace_numbered(line: &str, start: &str, end: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(start) {
        let after = &rest[i + start.len()..];
        match after.find(end) {
            Some(j) if !after[..j].contains(' ') && !after[..j].contains("DIR") => {
                out.push_str(&rest[..i]);
                out.push_str(with);
                rest = &after[j + end.len()..];
            }
            _ => {
                out.push_str(&rest[..i + start.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn check(name: &str, args: &[&str]) {
    let r = run(args, Duration::from_secs(20));
    r.assert_ok();
    let transcripts = per_process(&r.stdout);
    for (i, t) in transcripts.iter().enumerate() {
        let path = golden_dir().join(format!("{name}.P{}.txt", i + 1));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, t).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(
            t,
            &want,
            "{name} process P{} differs from {}",
            i + 1,
            path.display()
        );
    }
    let extra = golden_dir().join(format!("{name}.P{}.txt", transcripts.len() + 1));
    assert!(
        !extra.exists(),
        "{name}: expected more processes ({} exists)",
        extra.display()
    );
}

#[test]
fn golden_text_of_the_pipe_lab() {
    check("pipe", &["--no-color", "pipe"]);
}

#[test]
fn golden_text_of_the_fifo_demo() {
    check("fifo", &["--no-color", "fifo"]);
}

#[test]
fn normalising_hides_only_what_varies() {
    let t = normalise("[pid 7] read(3, \"x\", 1) = 1 <0.000012>\n  fds: pipe:[1234] (read end) /tmp/ipclab-77-ab12/fifo\n");
    assert_eq!(
        t,
        "[pid 7] read(3, \"x\", 1) = 1 <T>\n    fds: pipe:[N] (read end) /tmp/ipclab-DIR/fifo\n"
    );
}
