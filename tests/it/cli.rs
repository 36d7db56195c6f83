//! Global flags, the tour, completions and the man page.

use std::time::Duration;

use crate::util::{ipclab, run, run_cmd};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn tour_runs_every_section_and_ends_with_a_summary() {
    let r = run(&["--format", "json", "tour"], LIMIT);
    r.assert_ok();
    let rows = r.summary();
    let labs: Vec<&str> = rows.iter().filter_map(|r| r["lab"].as_str()).collect();
    for lab in [
        "pipe",
        "pipe --fill",
        "pipe --sigpipe",
        "pipe --forget-close",
        "pipe --duplex",
        "fifo",
        "shm",
        "unix demo",
        "unix pass-fd",
        "unix cred",
    ] {
        assert!(labs.contains(&lab), "missing {lab}: {labs:?}");
    }
    for row in &rows {
        let result = row["result"].as_str().unwrap_or("");
        assert!(result == "ok" || result.starts_with("skipped"), "{row}");
        if result == "ok" {
            assert!(row["syscalls"].as_u64().unwrap_or(0) > 0, "{row}");
        }
    }
    let sections = r.events().iter().filter(|e| e["type"] == "section").count();
    assert!(
        sections
            >= labs.len()
                - rows
                    .iter()
                    .filter(|r| r["result"].as_str().unwrap_or("").starts_with("skipped"))
                    .count()
    );
}

#[test]
fn tour_runs_unprivileged() {
    let Some(r) = crate::util::run_as_nobody(
        "tour_runs_unprivileged",
        &["--format", "json", "tour"],
        LIMIT,
    ) else {
        return;
    };
    r.assert_ok();
    // Without CAP_NET_RAW, ping and sniff run in a user namespace of their
    // own (where user namespaces are allowed), and the heading says so.
    let userns_ok = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|v| v.trim() != "0");
    if userns_ok {
        for lab in ["ping", "sniff"] {
            let heading = r
                .events()
                .into_iter()
                .find(|e| e["type"] == "section" && e["name"] == lab)
                .expect("section");
            assert!(
                heading["title"]
                    .as_str()
                    .unwrap_or("")
                    .contains("user and network namespace"),
                "{heading}"
            );
            assert!(
                r.summary()
                    .iter()
                    .any(|row| row["lab"] == lab && row["result"] == "ok"),
                "{lab}: {:?}",
                r.summary()
            );
        }
        assert!(r
            .steps()
            .iter()
            .any(|s| s["syscall"] == "unshare" && s["args"][0] == "CLONE_NEWUSER|CLONE_NEWNET"));
    }
    for lab in ["fifo", "shm", "unix demo", "unix pass-fd", "unix cred"] {
        assert!(
            r.summary()
                .iter()
                .any(|row| row["lab"] == lab && row["result"] == "ok"),
            "{lab}: {:?}",
            r.summary()
        );
    }
}

#[test]
fn text_output_is_strace_lines_with_notes_and_no_colour_off_a_tty() {
    let r = run(&["pipe"], LIMIT);
    r.assert_ok();
    assert!(
        !r.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("pipe2("))
        .expect("pipe2 line");
    assert!(line.starts_with("[pid "), "{line}");
    assert!(line.contains("pipe2([3, 4], 0) = 0 <"), "{line}");
    assert!(
        r.stdout.contains("<waiting for the child to write>"),
        "the waiting marker:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("[fork() in libc]"));
}

#[test]
fn quiet_prints_results_only() {
    let r = run(&["--quiet", "--format", "json", "pipe"], LIMIT);
    r.assert_ok();
    assert!(r.lab_steps().is_empty());
    assert!(r.messages().iter().any(|m| m.ends_with("hello")));
    assert_eq!(r.summary()[0]["syscalls"], 16, "syscalls are still counted");
}

#[test]
fn fds_lists_the_descriptor_table_with_pipe_ends() {
    let r = run(&["--fds", "--format", "json", "pipe"], LIMIT);
    r.assert_ok();
    let tables: Vec<serde_json::Value> = r
        .events()
        .into_iter()
        .filter(|e| e["type"] == "fds")
        .collect();
    assert!(!tables.is_empty());
    let first = &tables[0]["fds"];
    let descs: Vec<&str> = first
        .as_array()
        .expect("fds")
        .iter()
        .filter_map(|e| e["desc"].as_str())
        .collect();
    assert!(
        descs
            .iter()
            .any(|d| d.starts_with("pipe:[") && d.ends_with("(read end)")),
        "{descs:?}"
    );
    assert!(
        descs
            .iter()
            .any(|d| d.starts_with("pipe:[") && d.ends_with("(write end)")),
        "{descs:?}"
    );
}

#[test]
fn step_without_a_terminal_says_so_and_does_not_pause() {
    let r = run(&["--step", "pipe"], LIMIT);
    r.assert_ok();
    assert!(r.stderr.contains("--step needs a terminal"), "{}", r.stderr);
}

#[test]
fn completions_and_man_page_are_generated() {
    let r = run(&["completions", "bash"], LIMIT);
    r.assert_ok();
    assert!(r.stdout.contains("ipclab"));
    let r = run(&["man"], LIMIT);
    r.assert_ok();
    assert!(r.stdout.contains(".TH"));
    let r = run_cmd(ipclab().args(["completions", "klingon"]), LIMIT);
    assert_eq!(r.code(), Some(2));
}

/// Issue 7: with no command, one line (what is missing, where help is), not 26.
#[test]
fn no_arguments_print_one_line_and_exit_2() {
    for args in [&[][..], &["tcp"]] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("--help"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn bad_arguments_get_one_line_and_exit_2() {
    for args in [
        &["tcp", "demo", "--model", "nope"][..],
        &["pipe", "--fill", "--sigpipe"],
        &["fifo", "read"],
        &["bogus"],
        &["udp", "server", "--drop-every", "0"],
        &["tcp", "server", "--listen", "1.2.3.4:99999"],
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{args:?}: one line, got:\n{}",
            r.stderr
        );
        assert!(r.stderr.starts_with("ipclab: "), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: nothing ran");
    }
    let r = run(&["tcp", "demo", "--model", "nope"], LIMIT);
    assert!(
        r.stderr.contains("possible values: iterative, fork, poll"),
        "{}",
        r.stderr
    );
}
