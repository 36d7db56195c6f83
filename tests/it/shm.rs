//! `ipclab shm`: shared memory through /dev/shm or a memfd, with and
//! without the futex; nothing left in /dev/shm, no zombie, no open
//! descriptor; an existing name is never opened or removed; a stop signal
//! at any moment cleans up (issue 10).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::signals::{each_moment, Load};
use crate::util::{leaked_fds, run, strace_crosscheck, unreaped_children, Run};

const LIMIT: Duration = Duration::from_secs(20);

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["syscall"] == name)
        .unwrap_or_else(|| panic!("no {name} step: {steps:#?}"))
}

/// The /dev/shm names a run with pid `pid` could have made.
fn shm_names_of(pid: u32) -> Vec<String> {
    let prefix = format!("ipclab-{pid}-");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn clean(r: &Run) {
    let steps = r.lab_steps();
    assert!(unreaped_children(&steps).is_empty(), "{}", r.stdout);
    assert!(leaked_fds(&steps).is_empty(), "{:?}", leaked_fds(&steps));
    let pid = r.steps()[0]["pid"].as_u64().expect("pid") as u32;
    assert!(
        shm_names_of(pid).is_empty(),
        "left in /dev/shm: {:?}",
        shm_names_of(pid)
    );
}

#[test]
fn shm_moves_the_message_through_the_mapping_and_a_futex() {
    let r = run(&["--format", "json", "shm", "--message", "über shm"], LIMIT);
    r.assert_ok();
    clean(&r);
    let steps = r.lab_steps();
    let open = step(&steps, "openat");
    assert_eq!(open["libc"], "shm_open");
    let path = open["args"][1]
        .as_str()
        .expect("path")
        .trim_matches('"')
        .to_string();
    assert!(path.starts_with("/dev/shm/ipclab-"), "{open}");
    assert_eq!(
        open["args"][2], "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC",
        "{open}"
    );
    assert_eq!(open["args"][3], "0600");
    assert_eq!(step(&steps, "ftruncate")["args"][1], "4096");
    let mmap = step(&steps, "mmap");
    let args: Vec<&str> = mmap["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "NULL",
            "4096",
            "PROT_READ|PROT_WRITE",
            "MAP_SHARED",
            "3",
            "0"
        ]
    );
    let addr = format!("{:#x}", mmap["ret"].as_i64().expect("address"));
    // The child wakes the parent, which waited on the same word.
    let parent = open["pid"].clone();
    let wake = steps
        .iter()
        .find(|s| s["syscall"] == "futex" && s["args"][1] == "FUTEX_WAKE")
        .expect("FUTEX_WAKE");
    assert_ne!(wake["pid"], parent, "the child wakes");
    assert_eq!(wake["args"][0], addr.as_str());
    assert_eq!(wake["libc"], "syscall");
    let wait = steps
        .iter()
        .find(|s| s["syscall"] == "futex" && s["args"][1] == "FUTEX_WAIT")
        .expect("FUTEX_WAIT");
    assert_eq!(wait["pid"], parent);
    assert_eq!(wait["args"][0], addr.as_str());
    assert_eq!(wait["args"][2], "0");
    // Both unmap; the name is removed with the unlink glibc's shm_unlink makes.
    assert_eq!(steps.iter().filter(|s| s["syscall"] == "munmap").count(), 2);
    let unlink = step(&steps, "unlink");
    assert_eq!(unlink["libc"], "shm_unlink");
    assert_eq!(unlink["ret"], 0);
    assert_eq!(unlink["args"][0].as_str(), open["args"][1].as_str());
    // No read or write carries the message: it moves through memory.
    assert!(!steps.iter().any(|s| {
        (s["syscall"] == "read" || s["syscall"] == "write")
            && s["args"][1].as_str().unwrap_or("").contains("ber shm")
    }));
    let msgs = r.messages();
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("the parent read from the mapping: über shm")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("without any syscall")));
    assert!(!Path::new(&path).exists(), "{path} left behind");
}

#[test]
fn shm_no_sync_reads_too_early_then_after_wait4() {
    let r = run(&["--format", "json", "shm", "--no-sync"], LIMIT);
    r.assert_ok();
    clean(&r);
    let steps = r.lab_steps();
    assert!(
        !steps.iter().any(|s| s["syscall"] == "futex"),
        "no futex without sync"
    );
    let msgs = r.messages();
    let early = msgs
        .iter()
        .find(|m| m.starts_with("--no-sync: the parent looks at once"))
        .expect("the early look");
    // Whatever it found is said: nothing, a torn message or (by luck) all.
    assert!(
        early.contains("nothing") || early.contains("torn") || early.contains("by luck"),
        "{early}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("after wait4") && m.contains("holds hello")),
        "{msgs:?}"
    );
    // The second look comes after the child was reaped.
    let wait4 = step(&steps, "wait4")["seq"].as_u64().expect("seq");
    let munmap_parent = steps
        .iter()
        .filter(|s| s["syscall"] == "munmap")
        .map(|s| s["seq"].as_u64().expect("seq"))
        .max()
        .expect("munmap");
    assert!(munmap_parent > wait4);
}

#[test]
fn shm_memfd_has_no_name_to_remove() {
    let r = run(&["--format", "json", "shm", "--memfd"], LIMIT);
    r.assert_ok();
    clean(&r);
    let steps = r.lab_steps();
    let m = step(&steps, "memfd_create");
    assert_eq!(m["args"][0], "\"ipclab\"");
    assert_eq!(m["args"][1], "MFD_CLOEXEC");
    assert_eq!(m["ret"], 3);
    assert!(!steps
        .iter()
        .any(|s| s["syscall"] == "openat" || s["syscall"] == "unlink"));
    assert!(steps.iter().any(|s| s["syscall"] == "futex"));
}

#[test]
fn shm_fds_shows_the_mapping_from_proc_maps() {
    let r = run(&["--fds", "--format", "json", "shm"], LIMIT);
    r.assert_ok();
    let tables: Vec<Value> = r
        .events()
        .into_iter()
        .filter(|e| e["type"] == "fds")
        .collect();
    let maps: Vec<&Value> = tables
        .iter()
        .flat_map(|t| t["maps"].as_array().into_iter().flatten())
        .collect();
    assert!(
        maps.iter().any(|m| m["perms"] == "rw-s"
            && m["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("/dev/shm/ipclab-")),
        "{maps:?}"
    );
    // After close(3) the descriptor is gone but the mapping stays.
    assert!(tables.iter().any(|t| {
        t["maps"].as_array().is_some_and(|m| !m.is_empty())
            && !t["fds"]
                .as_array()
                .expect("fds")
                .iter()
                .any(|f| f["target"].as_str().unwrap_or("").starts_with("/dev/shm/"))
    }));
    let text = run(&["--fds", "shm", "--memfd"], LIMIT);
    text.assert_ok();
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains(" map  ") && l.contains("rw-s /memfd:ipclab (deleted)")),
        "{}",
        text.stdout
    );
}

#[test]
fn shm_never_opens_or_removes_an_existing_name() {
    let pid = std::process::id();
    let taken = format!("ipclabtest-{pid}-taken");
    let path = Path::new("/dev/shm").join(&taken);
    std::fs::write(&path, "someone else's").expect("write /dev/shm");
    let link_name = format!("ipclabtest-{pid}-link");
    let link = Path::new("/dev/shm").join(&link_name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    for name in [taken.clone(), format!("/{taken}"), link_name.clone()] {
        let r = run(&["--format", "json", "shm", "--name", &name], LIMIT);
        assert_eq!(r.code(), Some(2), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("exists already"), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        let steps = r.lab_steps();
        assert_eq!(steps.len(), 1, "only the refused open: {steps:#?}");
        assert_eq!(steps[0]["errno"], "EEXIST");
    }
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "someone else's"
    );
    assert!(std::fs::symlink_metadata(&link)
        .expect("link still there")
        .file_type()
        .is_symlink());
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn shm_with_a_name_of_its_own_removes_it() {
    let name = format!("ipclabtest-{}-own", std::process::id());
    let r = run(&["--format", "json", "shm", "--name", &name], LIMIT);
    r.assert_ok();
    assert!(!Path::new("/dev/shm").join(&name).exists());
    let steps = r.lab_steps();
    assert_eq!(
        step(&steps, "unlink")["args"][0],
        format!("\"/dev/shm/{name}\"")
    );
}

#[test]
fn shm_bad_arguments_exit_2_before_any_step() {
    for args in [
        vec!["shm", "--message", ""],
        vec!["shm", "--message", &"m".repeat(4088)],
        vec!["shm", "--name", "a/b"],
        vec!["shm", "--name", ""],
        vec!["shm", "--name", ".."],
        vec!["shm", "--name", "x", "--memfd"],
    ] {
        let r = run(&args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: no step: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
}

#[test]
fn shm_stops_cleanly_and_leaves_nothing_in_dev_shm() {
    for args in [&["shm"][..], &["shm", "--no-sync"], &["shm", "--memfd"]] {
        for pid in each_moment(args, Load::None, 5) {
            assert!(
                shm_names_of(pid).is_empty(),
                "{args:?}: left in /dev/shm: {:?}",
                shm_names_of(pid)
            );
        }
    }
}

#[test]
fn strace_agrees_with_every_shm_option() {
    for extra in [
        &[][..],
        &["--no-sync"],
        &["--memfd"],
        &["--memfd", "--no-sync"],
    ] {
        let mut args = vec!["shm"];
        args.extend_from_slice(extra);
        let Some(run) = strace_crosscheck("strace_agrees_with_every_shm_option", &args, LIMIT)
        else {
            return;
        };
        run.assert_ok();
    }
}
