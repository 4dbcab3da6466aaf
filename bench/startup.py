#!/usr/bin/env python3
"""Start-up overhead of `seccell run`: wall time of a short command run bare
and through seccell, interleaved in one run.

Cases (each command's stdout and stdin are /dev/null):
  true  bare        /bin/true
  true  embedded    seccell run -- /bin/true   (private broker+tracer per run)
  true  broker      seccell run --broker DIR -- /bin/true   (running broker)
  echo  ...         the same with /bin/echo seccell-bench
  loop  ...         sh -c '<N x /bin/true>' bare and under
                    `seccell run --max-procs 64` (embedded): fork+exec cost
                    with every fork and exec notified

The cases of a group run round-robin (bare, embedded, broker, bare, ...) so
that drifting load on the machine hits all of them alike. Every run is
bounded by --timeout; a run that exceeds it, or exits non-zero, fails the
benchmark. The broker case starts `seccell-broker --dir TMPDIR` (root only)
and stops it at the end.

The p10/p90 columns are the 10th and 90th percentiles (with fewer than 10
runs: the minimum and maximum). Prints a table, and with --json FILE writes the figures for bench/run.
"""
import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


class BenchError(Exception):
    pass


def run_once(argv, timeout):
    """Spawn argv (stdin/stdout to /dev/null, stderr inherited), wait for it
    with a deadline; return the wall time in ns."""
    t0 = time.perf_counter_ns()
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                           (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    except OSError as e:
        raise BenchError("cannot run %s: %s" % (argv[0], e.strerror))
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise BenchError("timed out after %gs: %s" % (timeout, " ".join(argv)))
        _, st = os.waitpid(pid, 0)
        t1 = time.perf_counter_ns()
    finally:
        os.close(pidfd)
    code = os.waitstatus_to_exitcode(st)
    if code != 0:
        raise BenchError("exit status %d: %s" % (code, " ".join(argv)))
    return t1 - t0


def measure(cases, reps, warmup, timeout):
    """cases: list of (name, argv). Round-robin; returns {name: [ns...]}."""
    for _ in range(warmup):
        for _, argv in cases:
            run_once(argv, timeout)
    out = {name: [] for name, _ in cases}
    for _ in range(reps):
        for name, argv in cases:
            out[name].append(run_once(argv, timeout))
    return out


def summary(samples):
    s = sorted(samples)
    if len(s) >= 10:
        q = statistics.quantiles(s, n=10)
        lo, hi = q[0], q[8]
    else:  # too few runs for deciles: the extremes
        lo, hi = s[0], s[-1]
    return {"n": len(s), "median_ms": statistics.median(s) / 1e6, "p10_ms": lo / 1e6,
            "p90_ms": hi / 1e6, "min_ms": s[0] / 1e6}


def start_broker(broker_bin):
    d = tempfile.mkdtemp(prefix="seccell-bench-broker.")
    r, w = os.pipe()
    log = open(os.path.join(d, "broker.log"), "wb")
    p = subprocess.Popen([broker_bin, "--dir", d, "--ready-fd", str(w)], pass_fds=[w],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 10)
    ok = bool(ready) and os.read(r, 1) == b"r"
    os.close(r)
    if not ok:
        stop_broker(p, d)
        raise BenchError("seccell-broker did not become ready (log in %s)" % d)
    return p, d


def stop_broker(p, d):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seccell", default=os.path.join(TOP, "build", "seccell"))
    ap.add_argument("--reps", type=int, default=200, help="runs of each start-up case (default 200)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--loop", type=int, default=1000, help="/bin/true runs in the loop case (0: skip)")
    ap.add_argument("--loop-reps", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=20, help="seconds allowed for one run")
    ap.add_argument("--no-broker", action="store_true", help="skip the running-broker case")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    sc = os.path.abspath(a.seccell)
    broker_bin = os.path.join(os.path.dirname(sc), "seccell-broker")
    use_broker = not a.no_broker and os.geteuid() == 0 and os.access(broker_bin, os.X_OK)
    results = {"reps": a.reps, "warmup": a.warmup, "groups": {}}
    broker = None
    try:
        if use_broker:
            broker = start_broker(broker_bin)
        groups = []
        for prog, args in (("true", ["/bin/true"]), ("echo", ["/bin/echo", "seccell-bench"])):
            cases = [("bare", args), ("embedded", [sc, "run", "--"] + args)]
            if broker:
                cases.append(("broker", [sc, "run", "--broker", broker[1], "--"] + args))
            groups.append((prog, cases, a.reps, a.warmup))
        if a.loop > 0:
            script = "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % a.loop
            sh = ["/bin/sh", "-c", script]
            groups.append(("loop%d" % a.loop,
                           [("bare", sh), ("embedded", [sc, "run", "--max-procs", "64", "--"] + sh)],
                           a.loop_reps, 1))
        for prog, cases, reps, warmup in groups:
            samples = measure(cases, reps, warmup, a.timeout)
            g = {name: summary(v) for name, v in samples.items()}
            base = g["bare"]["median_ms"]
            for name, s in g.items():
                s["ratio"] = s["median_ms"] / base
                s["overhead_ms"] = s["median_ms"] - base
            results["groups"][prog] = g
    except BenchError as e:
        print("startup: %s" % e, file=sys.stderr)
        return 1
    finally:
        if broker:
            stop_broker(*broker)

    print("%-10s %-9s %5s %10s %10s %10s %8s %11s" %
          ("command", "mode", "runs", "median ms", "p10 ms", "p90 ms", "ratio", "overhead ms"))
    for prog, g in results["groups"].items():
        for name, s in g.items():
            print("%-10s %-9s %5d %10.3f %10.3f %10.3f %7.2fx %+11.3f" %
                  (prog, name, s["n"], s["median_ms"], s["p10_ms"], s["p90_ms"], s["ratio"], s["overhead_ms"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
