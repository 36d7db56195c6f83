//! Issue 8 §2: the trace as strace users read it — ipclab's own options
//! before the subcommand (-t, -r, -e, -s, -o, -c), strace's signal and
//! exit lines, one line per message, headings under -q.

use std::time::Duration;

use crate::util::{ipclab, run, run_cmd, spawn_cmd, strace_crosscheck, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

fn step_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("[pid ") && l.contains(") = "))
        .collect()
}

#[test]
fn timestamps_as_strace_t_tt_ttt_and_r() {
    let r = run(&["--no-color", "-tt", "pipe"], LIMIT);
    r.assert_ok();
    for l in step_lines(&r.stdout) {
        let after = l.split("] ").nth(1).expect("after the pid");
        let ts = after.split(' ').next().expect("a timestamp");
        // HH:MM:SS.uuuuuu
        assert_eq!(ts.len(), 15, "{l}");
        assert_eq!(&ts[2..3], ":", "{l}");
        assert_eq!(&ts[8..9], ".", "{l}");
    }
    let r = run(&["--no-color", "-t", "pipe"], LIMIT);
    let first = step_lines(&r.stdout)[0].split("] ").nth(1).expect("after");
    assert_eq!(first.split(' ').next().map(str::len), Some(8), "{first}");
    let r = run(&["--no-color", "-ttt", "pipe"], LIMIT);
    let first = step_lines(&r.stdout)[0].split("] ").nth(1).expect("after");
    let epoch: f64 = first
        .split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("seconds.micro");
    assert!(epoch > 1.7e9);
    let r = run(&["--no-color", "-r", "pipe"], LIMIT);
    for l in step_lines(&r.stdout) {
        let after = l.split("] ").nth(1).expect("after");
        let rel: f64 = after
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .expect("a relative time");
        assert!((0.0..5.0).contains(&rel), "{l}");
    }
}

#[test]
fn trace_filter_shows_only_what_is_asked_and_counts_everything() {
    let all = run(&["--format", "json", "pipe"], LIMIT);
    let some = run(
        &["--format", "json", "-e", "trace=pipe2,%process", "pipe"],
        LIMIT,
    );
    some.assert_ok();
    let names: Vec<String> = some
        .steps()
        .iter()
        .filter_map(|s| s["syscall"].as_str().map(str::to_string))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| ["pipe2", "clone", "wait4", "exit_group", "pidfd_open"].contains(&n.as_str())),
        "{names:?}"
    );
    assert!(names.contains(&"pipe2".to_string()) && names.contains(&"clone".to_string()));
    assert_eq!(
        some.summary()[0]["syscalls"],
        all.summary()[0]["syscalls"],
        "the summary counts every call"
    );
    let net = run(
        &[
            "--format",
            "json",
            "-e",
            "trace=!ppoll,rt_sigprocmask,rt_sigaction",
            "pipe",
        ],
        LIMIT,
    );
    assert!(net
        .steps()
        .iter()
        .all(|s| s["syscall"] != "ppoll" && s["syscall"] != "rt_sigaction"));
    let bad = run(&["-e", "trace=%bogus", "pipe"], LIMIT);
    assert_eq!(bad.code(), Some(2));
    assert!(bad.stderr.contains("%network"), "{}", bad.stderr);
    assert!(bad.stdout.is_empty());
}

#[test]
fn a_filtered_run_still_agrees_with_strace() {
    if let Some(run) = strace_crosscheck(
        "a_filtered_run_still_agrees_with_strace",
        &["-e", "trace=%network", "tcp", "demo"],
        LIMIT,
    ) {
        run.assert_ok();
        assert!(run.steps().iter().all(|s| s["syscall"] != "close"));
    }
}

#[test]
fn strsize_cuts_buffers_as_strace_s() {
    let msg = "x".repeat(80);
    let r = run(
        &["--format", "json", "-s", "64", "pipe", "--message", &msg],
        LIMIT,
    );
    r.assert_ok();
    let w = r
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "write")
        .expect("write");
    assert_eq!(w["args"][1], format!("\"{}\"...", "x".repeat(64)));
    let r = run(&["--format", "json", "pipe", "--message", &msg], LIMIT);
    let w = r
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "write")
        .expect("write");
    assert_eq!(w["args"][1], format!("\"{}\"...", "x".repeat(32)));
}

#[test]
fn output_file_takes_the_trace_and_keeps_descriptor_numbers() {
    let dir = TempDir::new("habits-o");
    let file = dir.path().join("trace.txt");
    let r = run(
        &["--no-color", "-o", file.to_str().expect("utf-8"), "pipe"],
        LIMIT,
    );
    r.assert_ok();
    assert!(
        r.stdout.is_empty(),
        "the trace went to the file: {}",
        r.stdout
    );
    let text = std::fs::read_to_string(&file).expect("the -o file");
    assert!(text.contains("pipe2([3, 4], 0) = 0"), "{text}");
    assert!(text.contains("summary"));
    assert!(text.contains("+++ exited with 0 +++"));
}

#[test]
fn count_table_as_strace_c() {
    let r = run(&["--no-color", "-c", "pipe"], LIMIT);
    r.assert_ok();
    assert!(step_lines(&r.stdout).is_empty(), "no step lines with -c");
    assert!(r
        .stdout
        .contains("% time     seconds  usecs/call     calls    errors syscall"));
    let total = r
        .stdout
        .lines()
        .find(|l| l.ends_with(" total"))
        .expect("a total row");
    // The preamble's 4 calls and the lab's 16 (parent and child).
    assert!(total.split_whitespace().nth(3) == Some("20"), "{total}");
    assert!(
        !r.stdout.lines().any(|l| l.ends_with(" ?")),
        "every syscall has a name"
    );
    let j = run(&["--format", "json", "-c", "pipe"], LIMIT);
    assert!(j.events().iter().any(|e| e["type"] == "counts"));
}

#[test]
fn signals_and_exits_are_shown_as_strace_shows_them() {
    let r = run(&["--format", "json", "pipe", "--sigpipe"], LIMIT);
    r.assert_ok();
    let ev = r.events();
    assert!(
        ev.iter()
            .any(|e| e["type"] == "exit" && e["signal"] == "SIGPIPE"),
        "+++ killed by SIGPIPE +++"
    );
    let r = run(&["--no-color", "pipe"], LIMIT);
    assert!(r.stdout.contains("+++ exited with 0 +++"));
    // A SIGTERM sent to a waiting server: the signal line, then the EINTR.
    let mut cmd = ipclab();
    cmd.args([
        "--format",
        "json",
        "udp",
        "server",
        "--listen",
        "127.0.0.1:0",
    ]);
    let srv = spawn_cmd(&mut cmd);
    std::thread::sleep(Duration::from_millis(400));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status();
    let r = srv.wait_timeout(LIMIT);
    assert_eq!(r.code(), Some(143));
    let ev = r.events();
    let at = ev
        .iter()
        .position(|e| e["type"] == "signal")
        .expect("a signal line");
    assert_eq!(ev[at]["signal"], "SIGTERM");
    assert_eq!(ev[at]["si_code"], "SI_USER");
    let next = ev[at + 1..]
        .iter()
        .find(|e| e["type"] == "syscall")
        .expect("the interrupted call");
    assert_eq!(next["syscall"], "ppoll");
    assert_eq!(next["errno"], "EINTR");
}

#[test]
fn quiet_keeps_headings_and_messages_stay_on_one_line() {
    let r = run(&["--format", "json", "-q", "tour"], Duration::from_secs(90));
    assert!(r.events().iter().filter(|e| e["type"] == "section").count() >= 10);
    let r = run(&["--no-color", "pipe", "--message", "two\nlines"], LIMIT);
    r.assert_ok();
    let m = r
        .stdout
        .lines()
        .find(|l| l.contains(">> message written"))
        .expect("the message line");
    assert!(m.ends_with("two\\nlines"), "{m}");
}

#[test]
fn man_and_completions_take_no_trace_options() {
    for args in [&["--fds", "man"][..], &["-c", "completions", "bash"]] {
        let mut cmd = ipclab();
        cmd.args(args);
        let r = run_cmd(&mut cmd, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1);
    }
}

/// Issue 8 §5: a port alone means every address, as socat and ncat take it;
/// the UDP client sends up to 65507 bytes, so the EMSGSIZE lesson needs no
/// other program.
#[test]
fn endpoints_as_socat_users_write_them() {
    let mut cmd = ipclab();
    cmd.args(["--format", "json", "udp", "server", "--listen", ":0"]);
    let srv = spawn_cmd(&mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status();
    let r = srv.wait_timeout(LIMIT);
    let bind = r
        .lab_steps()
        .into_iter()
        .find(|s| s["syscall"] == "bind")
        .expect("bind");
    assert!(
        bind["args"][1]
            .as_str()
            .unwrap_or("")
            .contains("inet_addr(\"0.0.0.0\")"),
        "{bind}"
    );

    let mut cmd = ipclab();
    cmd.args([
        "--format",
        "json",
        "udp",
        "server",
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut srv = crate::util::spawn_cmd(&mut cmd);
    let out = srv
        .child
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let port = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("getsockname");
        if l.contains("\"getsockname\"") {
            let v: serde_json::Value = serde_json::from_str(&l).expect("json");
            break crate::tcp::parse_sockaddr(v["args"][1].as_str().expect("addr")).port();
        }
    };
    let big = "x".repeat(65507);
    let target = format!("127.0.0.1:{port}");
    let c = run(
        &[
            "udp",
            "client",
            "--connect",
            &target,
            "--send",
            &big,
            "--timeout",
            "0.3",
        ],
        LIMIT,
    );
    assert!(
        !c.stderr.contains("at most"),
        "65507 bytes are accepted: {}",
        c.stderr
    );
    let too_big = "x".repeat(65508);
    let c = run(
        &["udp", "client", "--connect", &target, "--send", &too_big],
        LIMIT,
    );
    assert_eq!(c.code(), Some(2));
    let _ = run(
        &["udp", "client", "--connect", &target, "--send", "q"],
        LIMIT,
    );
    let _ = srv.child.as_mut().map(|c| c.wait());
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"sendto\"") && l.contains("\"EMSGSIZE\"")),
        "the server's reply, prefix + 65507 bytes, refused with EMSGSIZE"
    );
}

/// Issue 8 §1: one man page per command, with the sections a man reader
/// expects, and `man -l` renders each without a warning.
#[test]
fn man_pages_for_every_command_render_cleanly() {
    let dir = TempDir::new("man");
    let r = run(
        &["man", "--install", dir.path().to_str().expect("utf-8")],
        LIMIT,
    );
    r.assert_ok();
    let man1 = dir.path().join("man1");
    let pages: Vec<_> = std::fs::read_dir(&man1)
        .expect("man1")
        .filter_map(|e| e.ok())
        .collect();
    assert!(pages.len() >= 15, "{} pages", pages.len());
    for name in [
        "ipclab.1",
        "ipclab-tour.1",
        "ipclab-tcp-server.1",
        "ipclab-errata.1",
    ] {
        let text = std::fs::read_to_string(man1.join(name)).expect(name);
        for section in ["EXIT STATUS", "SEE ALSO"] {
            assert!(text.contains(section), "{name}: {section}");
        }
    }
    let main = std::fs::read_to_string(man1.join("ipclab.1")).expect("main page");
    assert!(main.contains("ENVIRONMENT") && main.contains("NO_COLOR") && main.contains("EXAMPLES"));
    let r = run(&["man", "tcp", "server"], LIMIT);
    r.assert_ok();
    assert!(r.stdout.contains("ipclab-tcp-server"));
    if !crate::util::have_tool("man") {
        crate::util::skip(
            "man_pages_for_every_command_render_cleanly",
            "needs man (man-db) to render",
        );
        return;
    }
    for e in pages {
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(e.path())
            .env("MANWIDTH", "80")
            .output()
            .expect("man");
        assert!(out.status.success(), "{:?}", e.path());
        let warn = String::from_utf8_lossy(&out.stderr);
        assert!(warn.trim().is_empty(), "{:?}: {warn}", e.path());
    }
}

/// Issue 8 §2: --step asks on the terminal, one process at a time, each
/// prompt on a line of its own naming its pid. `script` gives the run a
/// terminal; the test answers every prompt with Enter.
#[test]
fn step_prompts_one_process_at_a_time_on_the_terminal() {
    use std::io::Write;
    if !crate::util::have_tool("script") {
        crate::util::skip(
            "step_prompts_one_process_at_a_time_on_the_terminal",
            "needs script (util-linux) for a terminal",
        );
        return;
    }
    let bin = env!("CARGO_BIN_EXE_ipclab");
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{bin} --no-color --step pipe"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut input = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        for _ in 0..80 {
            if input.write_all(b"\n").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let status = crate::util::wait_exit(
        &mut child,
        Duration::from_secs(30),
        "ipclab --step under script",
    );
    let _ = feeder.join();
    let text = reader.join().unwrap_or_default();
    assert!(status.success(), "{text}");
    let prompts: Vec<&str> = text.lines().filter(|l| l.contains("next: ")).collect();
    assert!(
        prompts.iter().any(|l| l.contains("next: pipe2()")),
        "{text}"
    );
    assert!(
        prompts
            .iter()
            .all(|l| l.trim_start().starts_with("[pid ") && l.matches("next: ").count() == 1),
        "{prompts:?}"
    );
    let pids: std::collections::BTreeSet<&str> = prompts
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("[pid ")?.split(']').next())
        .collect();
    assert!(pids.len() >= 2, "parent and child both asked: {pids:?}");
}
