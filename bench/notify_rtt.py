#!/usr/bin/env python3
"""Cost of one seccomp notification round trip through the seccell tracer.

Compiles bench/notify_rtt.c (cc -O2) into BUILD/bench/ and runs its tight
syscall loop (N calls per repetition, CLOCK_MONOTONIC inside the program)
in the set-ups below. ROUNDS rounds each run every set-up once, in turn
(REPS repetitions per run), so drifting load on the machine hits all set-ups
alike; reported is the median per-call time over all repetitions.

  bare      the program run directly: no seccomp filter, the syscall's own cost
  notified  seccell run -- notify_rtt ...: the syscall goes to the tracer,
            which answers at once (no audit sink: nothing is read or written)
  audited   seccell run --audit FILE -- ...: as notified, plus the exec audit
            (execve only: path and argv read from the caller's memory with
            process_vm_readv, the notification id re-checked, one JSON line
            written to FILE)
  raw       (unshare only, no seccell) the program's own minimal supervisor:
            a forked child notifies unshare, the parent answers EPERM with a
            blocking RECV + SEND ioctl loop: the kernel's round trip, the floor
            for any seccomp-notify supervisor on this machine
  rawsync   raw with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6+;
            skipped where the kernel refuses it)

for two syscalls:

  execve  execve("/nonexistent/seccell-bench", argv, envp) -> ENOENT; in
          seccell's default policy every execve is notified (CONTINUE)
  unshare unshare(0): 0 bare; notified, the tracer answers EPERM
          (namespace denial), so no kernel work follows the round trip

The difference notified - bare is the cost of the notification round trip
(two context switches between the sandboxed task and the tracer, and the
tracer's receive/poll/send ioctls); notified - raw is what seccell's tracer
loop adds to the kernel's floor; audited - notified is the exec audit.
Each run of the program is bounded by --timeout.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
RESULT = re.compile(r"^RESULT (\S+) n=(\d+) reps=(\d+) median_ns=([\d.]+) min_ns=([\d.]+) "
                    r"max_ns=([\d.]+) errno=(\S+)$", re.M)


def build(outdir):
    os.makedirs(outdir, exist_ok=True)
    src = os.path.join(HERE, "notify_rtt.c")
    exe = os.path.join(outdir, "notify_rtt")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe, src], check=True)
    return exe


REP = re.compile(r"^rep \d+: ([\d.]+) ns/call$", re.M)


def run(argv, timeout, optional=False):
    """One run of the program: its per-repetition figures and final errno."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit("notify_rtt: timed out after %gs: %s" % (timeout, " ".join(argv)))
    m = RESULT.search(p.stdout)
    if p.returncode != 0 or not m:
        if optional:
            return None
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit("notify_rtt: failed (status %d): %s" % (p.returncode, " ".join(argv)))
    return {"reps_ns": [float(x) for x in REP.findall(p.stdout)], "errno": m.group(7)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seccell", default=os.path.join(TOP, "build", "seccell"))
    ap.add_argument("--build-dir", default=os.path.join(TOP, "build", "bench"))
    ap.add_argument("-n", type=int, default=20000, help="calls per repetition (default 20000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per program run (default 3)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds; each runs every set-up once, in turn (default 3)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds allowed for one program run")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    exe = build(a.build_dir)
    sc = os.path.abspath(a.seccell)
    loop = [str(a.n), str(a.reps)]
    res = {}
    with tempfile.TemporaryDirectory(prefix="seccell-bench-rtt.") as tmp:
        audit = os.path.join(tmp, "audit.jsonl")
        setups = {
            "execve": [("bare", [exe, "execve"] + loop, False),
                       ("notified", [sc, "run", "--", exe, "execve"] + loop, False),
                       ("audited", [sc, "run", "--audit", audit, "--", exe, "execve"] + loop, False)],
            "unshare": [("bare", [exe, "unshare"] + loop, False),
                        ("raw", [exe, "raw"] + loop, False),
                        ("rawsync", [exe, "rawsync"] + loop, True),
                        ("notified", [sc, "run", "--", exe, "unshare"] + loop, False)],
        }
        for mode, cases in setups.items():
            got = {name: {"reps_ns": [], "errno": set()} for name, _, _ in cases}
            for _ in range(a.rounds):  # set-ups in turn: drifting load hits all alike
                for name, argv, optional in cases:
                    if got[name] is None:
                        continue
                    r = run(argv, a.timeout, optional)
                    if r is None:  # e.g. rawsync on a kernel before 6.6
                        got[name] = None
                        continue
                    got[name]["reps_ns"] += r["reps_ns"]
                    got[name]["errno"].add(r["errno"])
            if mode == "execve":
                with open(audit) as f:
                    execs = sum(1 for line in f if '"event":"exec"' in line)
                # per run: the program's own exec, the warm-up, the loops
                want = a.rounds * (1 + (a.n // 10 + 1) + a.n * a.reps)
                if execs != want:
                    raise SystemExit("notify_rtt: audit has %d exec events, expected %d" % (execs, want))
            # the set-up must be what it claims: bare runs unfiltered,
            # notified ones reach a supervisor
            want_errno = {"execve": {"bare": "ENOENT", "notified": "ENOENT", "audited": "ENOENT"},
                          "unshare": {"bare": "0", "raw": "EPERM", "rawsync": "EPERM", "notified": "EPERM"}}[mode]
            r = {}
            for name, g in got.items():
                if g is None:
                    continue
                if g["errno"] != {want_errno[name]}:
                    raise SystemExit("notify_rtt: %s %s: calls ended with %s, expected %s (is seccell filtering?)" %
                                     (mode, name, "/".join(sorted(g["errno"])), want_errno[name]))
                v = g["reps_ns"]
                r[name] = {"median_ns": statistics.median(v), "min_ns": min(v), "max_ns": max(v), "reps": len(v)}
            res[mode] = r

    print("%-8s %-9s %12s %12s %12s %14s" % ("syscall", "set-up", "median ns", "min ns", "max ns", "minus bare ns"))
    for mode, r in res.items():
        base = r["bare"]["median_ns"]
        for name, s in r.items():
            s["minus_bare_ns"] = s["median_ns"] - base
            print("%-8s %-9s %12.0f %12.0f %12.0f %+14.0f" %
                  (mode, name, s["median_ns"], s["min_ns"], s["max_ns"], s["minus_bare_ns"]))
    u = res["unshare"]
    print("seccell's tracer over the raw kernel round trip: %+.0f ns per notification" %
          (u["notified"]["median_ns"] - u["raw"]["median_ns"]))
    print("(per call: median over %d rounds x %d repetitions of %d calls; set-ups in turn)" %
          (a.rounds, a.reps, a.n))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
