//! `ipclab fifo`: the demo, the two-terminal `read`/`write`, refusing what is
//! not a FIFO, and cleanup on exit and on SIGTERM.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use crate::util::{leaked_fds, run, spawn, unreaped_children, wait_until, TempDir};

const LIMIT: Duration = Duration::from_secs(20);

fn is_fifo(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

#[test]
fn fifo_demo_blocks_in_open_then_cleans_up() {
    let r = run(&["--format", "json", "fifo"], LIMIT);
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(unreaped_children(&steps).is_empty());
    assert!(leaked_fds(&steps).is_empty(), "{:?}", leaked_fds(&steps));
    let mkdir = steps
        .iter()
        .find(|s| s["syscall"] == "mkdir")
        .expect("mkdir");
    let dir = mkdir["args"][0]
        .as_str()
        .expect("path")
        .trim_matches('"')
        .to_string();
    let mknod = steps
        .iter()
        .find(|s| s["syscall"] == "mknodat")
        .expect("mknodat");
    assert_eq!(mknod["libc"], "mkfifo");
    assert_eq!(mknod["args"][2], "S_IFIFO|0600");
    let opens: Vec<_> = steps.iter().filter(|s| s["syscall"] == "openat").collect();
    assert_eq!(opens.len(), 2);
    let reader_open = opens
        .iter()
        .find(|s| s["args"][2].as_str().unwrap_or("").starts_with("O_RDONLY"))
        .expect("reader open");
    // The writer sleeps 300 ms before opening: the reader's open waited for it.
    assert!(
        reader_open["elapsed_us"].as_u64().unwrap_or(0) >= 200_000,
        "{reader_open}"
    );
    assert!(
        r.messages()
            .iter()
            .any(|m| m == "reader got: hello through a FIFO"),
        "{:?}",
        r.messages()
    );
    assert!(r.messages().iter().any(|m| m.contains("erratum")));
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "unlink" && s["ret"] == 0));
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "rmdir" && s["ret"] == 0));
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
}

#[test]
fn fifo_read_and_write_meet_through_a_path_then_remove_it() {
    let tmp = TempDir::new("fifo-rw");
    let path = tmp.path().join("chan");
    let p = path.to_str().expect("utf-8 path");
    let reader = spawn(&["--format", "json", "fifo", "read", p]);
    assert!(
        wait_until(LIMIT, || is_fifo(&path)),
        "the reader creates the FIFO"
    );
    let writer = run(
        &["--format", "json", "fifo", "write", p, "over the FIFO"],
        LIMIT,
    );
    writer.assert_ok();
    let r = reader.wait_timeout(LIMIT);
    r.assert_ok();
    assert!(
        r.messages().iter().any(|m| m == "read: over the FIFO"),
        "{:?}",
        r.messages()
    );
    assert!(
        !path.exists(),
        "the reader created the FIFO, so it removes it"
    );
    // The writer found an existing FIFO: it must not have created or removed it.
    assert!(!writer
        .lab_steps()
        .iter()
        .any(|s| s["syscall"] == "mknodat" || s["syscall"] == "unlink"));
}

#[test]
fn fifo_refuses_regular_files_and_symlinks_and_touches_nothing() {
    let tmp = TempDir::new("fifo-bad");
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "precious").expect("write");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    for target in [&file, &link] {
        let t = target.to_str().expect("utf-8");
        for args in [
            vec!["fifo", "write", t, "oops"],
            vec!["fifo", "read", t],
            vec!["fifo", "--path", t],
        ] {
            let r = run(&args, LIMIT);
            assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
            assert!(r.stderr.contains("not a FIFO"), "{args:?}: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "one clear line: {}", r.stderr);
        }
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "precious");
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
}

#[test]
fn fifo_in_a_missing_directory_fails_with_the_real_errno() {
    let r = run(
        &[
            "--format",
            "json",
            "fifo",
            "read",
            "/nonexistent-ipclab-dir/f",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("ENOENT"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let steps = r.lab_steps();
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "mknodat" && s["errno"] == "ENOENT"));
}

#[test]
fn fifo_bad_arguments_exit_2() {
    for args in [
        vec!["fifo", "write", "/tmp/x", ""],
        vec!["fifo", "read", ""],
        vec!["fifo", "read"],
        vec!["fifo", "--nope"],
    ] {
        let r = run(&args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
}

#[test]
fn fifo_reader_removes_its_fifo_on_sigterm() {
    let tmp = TempDir::new("fifo-term");
    let path = tmp.path().join("chan");
    let p = path.to_str().expect("utf-8");
    let reader = spawn(&["--format", "json", "fifo", "read", p]);
    assert!(wait_until(LIMIT, || is_fifo(&path)));
    // Let it reach the blocking open before the signal.
    std::thread::sleep(Duration::from_millis(200));
    let pid = nix_pid(reader.pid());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let r = reader.wait_timeout(LIMIT);
    assert_eq!(r.code(), Some(128 + 15), "{}", r.stderr);
    assert!(r.stderr.contains("interrupted by SIGTERM"), "{}", r.stderr);
    assert!(!path.exists(), "the FIFO is removed on SIGTERM");
}

fn nix_pid(p: u32) -> String {
    p.to_string()
}
