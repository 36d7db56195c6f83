#!/usr/bin/env bash
# Runs an ipclab lab under `strace -f -yy` and prints each step ipclab printed
# with, under it, the line(s) strace saw for it, as strace printed them (a
# call strace split into <unfinished ...> and <... resumed> shows both
# halves), matched by pid, name and order. ipclab's own options go first:
#   scripts/strace-side-by-side.sh -e trace=%network tcp demo
#
#   scripts/strace-side-by-side.sh pipe --fill
#   scripts/strace-side-by-side.sh fifo
#
# Needs strace and python3. Uses target/release/ipclab if built, else debug,
# else `ipclab` on PATH (override with IPCLAB=/path/to/ipclab).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 LAB [ARGS...]   e.g. $0 pipe --sigpipe" >&2
  exit 2
fi
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to pair the lines" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${IPCLAB:-}
if [ -z "$bin" ]; then
  for b in "$root/target/release/ipclab" "$root/target/debug/ipclab"; do
    [ -x "$b" ] && { bin=$b; break; }
  done
fi
bin=${bin:-ipclab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
strace -f -yy -qq -o "$tmp/strace.log" "$bin" --format json "$@" > "$tmp/steps.json" || true
python3 - "$tmp/steps.json" "$tmp/strace.log" <<'PY'
import json, re, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [s for s in steps if s.get("type") == "syscall"]
# Each strace call keeps the lines strace printed for it, as printed: one
# line, or the <unfinished ...> half and the <... resumed> half.
calls, pending = {}, {}
for raw in open(sys.argv[2]):
    line = raw.rstrip("\n")
    m = re.match(r"(\d+)\s+(.*)", line)
    if not m:
        continue
    pid, rest = int(m.group(1)), m.group(2)
    if rest.startswith(("---", "+++")):
        continue
    if rest.endswith("<unfinished ...>"):
        pending[pid] = (rest.split("(", 1)[0], line)
        continue
    r = re.match(r"<\.\.\. (\w+) resumed>", rest)
    if r:
        name, head = pending.pop(pid, (r.group(1), None))
        calls.setdefault(pid, []).append((name, [l for l in (head, line) if l]))
        continue
    calls.setdefault(pid, []).append((rest.split("(", 1)[0], [line]))

def first_arg(lines):
    text = lines[0].split(None, 1)[1] if lines else ""
    a = text.split("(", 1)[1] if "(" in text else ""
    return re.sub(r"<.*", "", re.split(r"[,)]", a, maxsplit=1)[0]).strip()

# Pair each pid's steps with its strace calls from the end backwards: the
# runtime's start-up calls come before the first step, never after the last.
match = {}
by_pid = {}
for s in steps:
    by_pid.setdefault(s["pid"], []).append(s)
for pid, mine in by_pid.items():
    lst, cur = calls.get(pid, []), len(calls.get(pid, []))
    for s in sorted(mine, key=lambda s: -s["seq"]):
        fd = s["args"][0] if s["args"] and s["args"][0].isdigit() else None
        k = next((k for k in range(cur - 1, -1, -1)
                  if lst[k][0] == s["syscall"] and (fd is None or first_arg(lst[k][1]) == fd)), None)
        if k is not None:
            match[s["seq"]] = lst[k][1]
            cur = k
# Stacked, not in columns: neither line is ever cut.
for s in sorted(steps, key=lambda s: s["seq"]):
    if s["ret"] is None:
        ret = "?"
    elif s["syscall"] == "mmap" and s["ret"] > 0:  # an address: hex, as strace prints it
        ret = hex(s["ret"])
    else:
        ret = str(s["ret"])
    if s["errno"]:
        ret += " " + s["errno"]
    print(f"#{s['seq']:<4} ipclab  [pid {s['pid']}] {s['syscall']}({', '.join(s['args'])}) = {ret}")
    lines = match.get(s["seq"])
    if not lines:
        print("      strace  (no matching strace line!)")
    for i, l in enumerate(lines or []):
        print(f"      {'strace' if i == 0 else '      '}  {l}")
PY
