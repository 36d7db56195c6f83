//! JSON Lines output: one object per event, each with a `type`.
//!
//! The envelope is a contract (README, "JSON output"): instructors grade with
//! it, so fields are only ever added, never renamed or removed.

use serde_json::{json, Value};

use super::errno::errno_name;
use super::event::{Event, ObjectRef, Outcome};

/// One JSON line (with its newline) for an event; empty for events JSON omits.
pub fn render(ev: &Event<'_>) -> String {
    let v: Value = match ev {
        Event::Step(s) => json!({
            "type": "syscall",
            "seq": s.seq,
            "pid": s.pid,
            "syscall": s.syscall,
            "libc": s.libc,
            "args": s.args,
            "ret": s.ret(),
            "errno": match s.outcome { Outcome::Err(e) => Some(errno_name(e)), _ => None },
            "ret_note": s.ret_note,
            "note": s.note,
            "elapsed_us": s.elapsed.as_micros() as u64,
            "provoked": s.provoked,
            "t_us": s.at.as_micros() as u64,
            "objects": s.objects.iter().map(object).collect::<Vec<_>>(),
        }),
        // The marker strace prints as `<unfinished ...>`; the call's own
        // `syscall` line follows when it returns.
        Event::Waiting {
            pid,
            syscall,
            lead,
            reason,
        } => json!({
            "type": "waiting",
            "pid": pid,
            "syscall": syscall,
            "lead": lead,
            "reason": reason,
        }),
        Event::Message { pid, text } => json!({ "type": "message", "pid": pid, "text": text }),
        Event::Section { name, title } => {
            json!({ "type": "section", "name": name, "title": title })
        }
        Event::Fds {
            pid,
            seq,
            entries,
            maps,
        } => json!({
            "type": "fds",
            "pid": pid,
            "after_seq": seq,
            "fds": entries.iter().map(|e| json!({"fd": e.fd, "target": e.target, "desc": e.desc})).collect::<Vec<_>>(),
            "maps": maps.iter().map(|m| json!({"range": m.range, "perms": m.perms, "path": m.path})).collect::<Vec<_>>(),
        }),
        Event::Signal(i) => json!({
            "type": "signal",
            "pid": i.pid,
            "signal": nix::sys::signal::Signal::try_from(i.signo).map_or_else(|_| i.signo.to_string(), |s| s.as_str().to_string()),
            "si_code": super::human::si_code_name(i.signo, i.code),
            "si_pid": i.si_pid,
            "si_uid": i.si_uid,
        }),
        Event::Exit { pid, code, signal } => json!({
            "type": "exit",
            "pid": pid,
            "status": code,
            "signal": signal,
        }),
        Event::Counts { rows } => json!({
            "type": "counts",
            "rows": rows.iter().map(|r| json!({
                "syscall": r.syscall, "calls": r.calls, "errors": r.errors,
                "seconds": r.nanos as f64 / 1e9,
            })).collect::<Vec<_>>(),
        }),
        Event::Table(t) => super::table::json(t),
        Event::Summary { rows } => json!({
            "type": "summary",
            "rows": rows.iter().map(|r| json!({
                "lab": r.lab, "syscalls": r.syscalls, "failed": r.failed, "provoked": r.provoked, "result": r.result,
            })).collect::<Vec<_>>(),
        }),
    };
    let mut line = v.to_string();
    line.push('\n');
    line
}

/// `{"fd":3,"object":"socket:[123]","proto":"TCP","local":…,"remote":…}`:
/// the keys that are not known are left out.
fn object(o: &ObjectRef) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("fd".into(), o.fd.into());
    m.insert("object".into(), o.object.clone().into());
    for (k, v) in [
        ("proto", &o.proto),
        ("local", &o.local),
        ("remote", &o.remote),
        ("peer", &o.peer),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone().into());
        }
    }
    Value::Object(m)
}
