//! JSON Lines output: one object per event, each with a `type`.
//!
//! The envelope is a contract (README, "JSON output"): instructors grade with
//! it, so fields are only ever added, never renamed or removed.

use serde_json::{json, Value};

use super::errno::errno_name;
use super::event::{Event, Outcome};

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
            "t_us": s.at.as_micros() as u64,
        }),
        // The step itself follows when the call returns; JSON readers want one line per call.
        Event::Waiting { .. } => return String::new(),
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
        Event::Summary { rows } => json!({
            "type": "summary",
            "rows": rows.iter().map(|r| json!({
                "lab": r.lab, "syscalls": r.syscalls, "failed": r.failed, "result": r.result,
            })).collect::<Vec<_>>(),
        }),
    };
    let mut line = v.to_string();
    line.push('\n');
    line
}
