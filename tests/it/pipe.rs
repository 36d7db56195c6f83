//! `ipclab pipe`: each option checked through its JSON steps and real effects.

use std::time::Duration;

use serde_json::Value;

use crate::util::{leaked_fds, run, unreaped_children, Run};

const LIMIT: Duration = Duration::from_secs(20);

fn pipe(extra: &[&str]) -> Run {
    let mut args = vec!["--format", "json", "pipe"];
    args.extend_from_slice(extra);
    let r = run(&args, LIMIT);
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(
        unreaped_children(&steps).is_empty(),
        "zombie left: {:?}",
        unreaped_children(&steps)
    );
    assert!(
        leaked_fds(&steps).is_empty(),
        "leaked fds: {:?}",
        leaked_fds(&steps)
    );
    assert_eq!(r.summary()[0]["result"], "ok");
    r
}

fn names_of(steps: &[Value], pid: i64) -> Vec<String> {
    steps
        .iter()
        .filter(|s| s["pid"] == pid)
        .map(|s| s["syscall"].as_str().unwrap_or("").to_string())
        .collect()
}

fn parent_pid(steps: &[Value]) -> i64 {
    steps[0]["pid"].as_i64().expect("pid")
}

fn child_pid(steps: &[Value]) -> i64 {
    steps
        .iter()
        .find(|s| s["syscall"] == "clone")
        .and_then(|s| s["ret"].as_i64())
        .expect("a clone step")
}

#[test]
fn pipe_child_writes_hello_parent_reads_it() {
    let r = pipe(&[]);
    let steps = r.lab_steps();
    let (p, c) = (parent_pid(&steps), child_pid(&steps));
    assert_eq!(steps[0]["syscall"], "pipe2");
    assert_eq!(steps[0]["libc"], "pipe");
    assert_eq!(steps[1]["syscall"], "clone");
    assert_eq!(steps[1]["libc"], "fork");
    assert_eq!(
        names_of(&steps, c),
        ["close", "write", "close", "exit_group"]
    );
    assert_eq!(
        names_of(&steps, p),
        [
            "pipe2",
            "clone",
            "close",
            "ppoll",
            "read",
            "ppoll",
            "read",
            "close",
            "pidfd_open",
            "ppoll",
            "wait4",
            "close"
        ]
    );
    let write = steps
        .iter()
        .find(|s| s["syscall"] == "write")
        .expect("write");
    assert_eq!(write["args"][1], "\"hello\"");
    assert_eq!(write["ret"], 5);
    let reads: Vec<&Value> = steps.iter().filter(|s| s["syscall"] == "read").collect();
    assert_eq!(reads[0]["ret"], 5);
    assert_eq!(
        reads[1]["ret"], 0,
        "EOF once the child closed its write end"
    );
    assert!(
        r.messages().iter().any(|m| m.ends_with(": hello")),
        "{:?}",
        r.messages()
    );
    let wait = steps
        .iter()
        .find(|s| s["syscall"] == "wait4")
        .expect("wait4");
    assert_eq!(wait["libc"], "waitpid");
    assert_eq!(wait["args"][1], "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]");
}

#[test]
fn pipe_reverse_makes_the_parent_the_writer() {
    let r = pipe(&["--reverse", "--message", "down the pipe"]);
    let steps = r.lab_steps();
    let p = parent_pid(&steps);
    let w = steps
        .iter()
        .find(|s| s["syscall"] == "write")
        .expect("write");
    assert_eq!(w["pid"], p);
    assert_eq!(w["args"][1], "\"down the pipe\"");
    assert!(
        r.messages()
            .iter()
            .any(|m| m.contains("parent: down the pipe")),
        "{:?}",
        r.messages()
    );
}

#[test]
fn pipe_fill_shows_capacity_eagain_and_a_blocked_write() {
    let r = pipe(&["--fill"]);
    let steps = r.lab_steps();
    let cap = steps
        .iter()
        .find(|s| s["args"][1] == "F_GETPIPE_SZ")
        .and_then(|s| s["ret"].as_i64())
        .expect("F_GETPIPE_SZ step");
    assert!(cap >= 4096);
    let setfl = steps
        .iter()
        .find(|s| s["args"][1] == "F_SETFL")
        .expect("F_SETFL");
    assert!(setfl["args"][2]
        .as_str()
        .unwrap_or("")
        .contains("O_NONBLOCK"));
    let writes: Vec<&Value> = steps.iter().filter(|s| s["syscall"] == "write").collect();
    let filled: i64 = writes
        .iter()
        .filter_map(|w| w["ret"].as_i64())
        .filter(|&n| n > 1)
        .sum();
    assert_eq!(
        filled, cap,
        "the pipe took exactly its capacity before EAGAIN"
    );
    assert!(writes.iter().any(|w| w["errno"] == "EAGAIN"));
    let last = writes.last().expect("writes");
    assert_eq!(last["ret"], 1, "the blocking write of one byte completes");
    assert!(
        last["elapsed_us"].as_u64().unwrap_or(0) >= 100_000,
        "it waited for the reader: {last}"
    );
    assert!(
        r.messages()
            .iter()
            .any(|m| m.contains(&format!("drained {} bytes", cap + 1))),
        "{:?}",
        r.messages()
    );
}

#[test]
fn pipe_sigpipe_shows_epipe_then_death_by_sigpipe() {
    let r = pipe(&["--sigpipe"]);
    let steps = r.lab_steps();
    let epipe = steps
        .iter()
        .find(|s| s["errno"] == "EPIPE")
        .expect("an EPIPE write");
    assert_eq!(epipe["syscall"], "write");
    assert_eq!(epipe["ret"], -1);
    let dying = steps
        .iter()
        .find(|s| s["syscall"] == "write" && s["ret"].is_null())
        .expect("the fatal write");
    assert_ne!(dying["pid"], epipe["pid"]);
    let wait = steps
        .iter()
        .find(|s| s["syscall"] == "wait4")
        .expect("wait4");
    assert_eq!(
        wait["args"][1],
        "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGPIPE}]"
    );
    assert!(steps.iter().any(|s| s["syscall"] == "rt_sigaction"
        && s["args"][1].as_str().unwrap_or("").contains("SIG_DFL")));
}

#[test]
fn pipe_forget_close_times_out_then_sees_eof() {
    let r = pipe(&["--forget-close"]);
    let steps = r.lab_steps();
    let p = parent_pid(&steps);
    let poll = steps
        .iter()
        .find(|s| s["syscall"] == "ppoll" && s["ret"] == 0)
        .expect("a ppoll that timed out");
    assert_eq!(poll["ret"], 0, "no EOF while our own write end is open");
    assert_eq!(poll["ret_note"], "(Timeout)");
    let after: Vec<&Value> = steps
        .iter()
        .filter(|s| s["pid"] == p && s["seq"].as_u64() > poll["seq"].as_u64())
        .collect();
    assert_eq!(after[0]["syscall"], "close");
    assert_eq!(after[1]["syscall"], "read");
    assert_eq!(after[1]["ret"], 0);
}

#[test]
fn pipe_duplex_uses_two_pipes() {
    let r = pipe(&["--duplex", "--message", "ping"]);
    let steps = r.lab_steps();
    assert_eq!(steps.iter().filter(|s| s["syscall"] == "pipe2").count(), 2);
    assert!(
        r.messages().iter().any(|m| m.contains("child got: ping")),
        "{:?}",
        r.messages()
    );
}

#[test]
fn pipe_rejects_bad_messages_with_exit_2() {
    for (args, needle) in [
        (vec!["pipe", "--message", ""], "empty"),
        (vec!["pipe", "--message", &"x".repeat(5000)], "at most 4096"),
        (vec!["pipe", "--fill", "--sigpipe"], "cannot be used with"),
        (vec!["pipe", "--bogus"], "unexpected argument"),
    ] {
        let r = run(&args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
        assert!(r.stdout.is_empty(), "nothing ran: {}", r.stdout);
    }
}
