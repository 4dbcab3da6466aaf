#!/usr/bin/env python3
"""Cost of the limits on real workloads: each workload bare, under seccell
without a limit and under seccell with the limit, interleaved, in one run;
medians, the ratio to bare and what the limit itself adds (limited minus
unlimited: seccell's start-up and exec audit are in both).

  subprocess loop   Python subprocess.run(["/bin/true"]) x N, --max-procs 64,
                    and again under --max-memory 1G (each vfork child traced
                    to its exec's event)
  mmap loop         N x (mmap 1 MiB private RW, touch a page, munmap), --max-memory 1G
  python start-up   python3 -c pass, --max-memory 1G
  fork burst        case 8: 64 threads released by one barrier each fork
                    once, 200 rounds, --max-procs 65 (with --procs-helper,
                    the test suite's seccell-procs-helper): median and
                    longest round, bare and limited; the case's target is
                    every round within a second
"""
import argparse, json, os, re, statistics, subprocess, sys, threading, time

PY = "/usr/bin/python3"  # not a pyenv shim, which would fork a shell first

def workloads(n):
    sub = ("import subprocess\nfor _ in range(%d): subprocess.run(['/bin/true'], check=True)" % n)
    mm = ("import mmap\nfor _ in range(%d):\n m = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE)\n"
          " m[0] = 1\n m.close()" % (n * 10))
    return [
        ("subprocess.run x%d" % n, [PY, "-c", sub], ["--max-procs", "64"]),
        ("subprocess.run x%d, mem" % n, [PY, "-c", sub], ["--max-memory", "1G"]),
        ("mmap/munmap 1 MiB x%d" % (n * 10), [PY, "-c", mm], ["--max-memory", "1G"]),
        ("python3 -c pass", [PY, "-c", "pass"], ["--max-memory", "1G"]),
    ]

def timed(argv, deadline):
    # A blocking wait with a watchdog: subprocess.run(timeout=...) polls
    # with a doubling sleep (0.5 ms .. 50 ms), which rounds every time up
    # to 15.5, 31.5, 63.5, ... ms.
    t = time.perf_counter_ns()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    dog = threading.Timer(deadline, p.kill)
    dog.start()
    rc = p.wait()
    ms = (time.perf_counter_ns() - t) / 1e6
    dog.cancel()
    if rc != 0:
        sys.exit("bench/limits.py: %s exited %d%s" % (argv, rc, " (deadline)" if ms >= deadline * 1000 else ""))
    return ms

def rounds_us(argv, deadline):
    """Run the helper's burst; return its median and longest round (us)."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=deadline)
    m = re.search(r"per-round (\d+)\.\.(\d+) round-us median (\d+) max (\d+)$", p.stdout, re.M)
    if p.returncode != 0 or not m or m.group(1) != "64" or m.group(2) != "64":
        sys.exit("bench/limits.py: %s exited %d, not 64 forks a round:\n%s%s" % (argv, p.returncode, p.stdout[-300:], p.stderr))
    return int(m.group(3)), int(m.group(4))

def burst(a):
    if not os.access(a.procs_helper, os.X_OK):
        sys.exit("bench/limits.py: --procs-helper %s is not an executable (scripts/build makes it)" % a.procs_helper)
    cmd = [a.procs_helper, "burst", str(a.rounds)]
    limited = [a.seccell, "run", "--max-procs", "65", "--"] + cmd
    bare, sec = rounds_us(cmd, 120), rounds_us(limited, 120)
    r = {"rounds": a.rounds, "bare_median_us": bare[0], "bare_max_us": bare[1],
         "seccell_median_us": sec[0], "seccell_max_us": sec[1], "every_round_within_1s": sec[1] < 1000000}
    print("\nfork burst (case 8): 64 forks at once x %d rounds, --max-procs 65" % a.rounds)
    print("  round median %.1f ms bare, %.1f ms limited (%.2fx); longest %.1f ms bare, %.1f ms limited: %s"
          % (bare[0] / 1e3, sec[0] / 1e3, sec[0] / bare[0], bare[1] / 1e3, sec[1] / 1e3,
             "every round within 1 s" if r["every_round_within_1s"] else "A ROUND TOOK OVER 1 s (case 8's target)"))
    return r

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seccell", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("-n", type=int, default=200, help="loop size (subprocess runs; mmaps are 10x)")
    ap.add_argument("--procs-helper", help="seccell-procs-helper (build/tests/integration/procs/) for the fork burst")
    ap.add_argument("--rounds", type=int, default=200, help="fork burst rounds")
    ap.add_argument("--json")
    a = ap.parse_args()
    out = {}
    print("%-26s %11s %11s %11s %7s %10s" % ("workload", "bare", "no limit", "limit", "ratio", "limit adds"))
    for name, cmd, limit in workloads(a.n):
        plain = [a.seccell, "run", "--"] + cmd
        sandboxed = [a.seccell, "run"] + limit + ["--"] + cmd
        timed(cmd, 60), timed(plain, 60), timed(sandboxed, 60)  # warm caches
        bare, unl, sec = [], [], []
        for _ in range(a.reps):  # interleaved: drift hits all alike
            bare.append(timed(cmd, 120))
            unl.append(timed(plain, 120))
            sec.append(timed(sandboxed, 120))
        mb, mu, ms = statistics.median(bare), statistics.median(unl), statistics.median(sec)
        out[name] = {"limit": limit, "bare_ms": mb, "unlimited_ms": mu, "seccell_ms": ms, "ratio": ms / mb,
                     "limit_adds_ms": ms - mu}
        print("%-26s %8.1f ms %8.1f ms %8.1f ms %6.2fx %+7.1f ms   (%s)"
              % (name, mb, mu, ms, ms / mb, ms - mu, " ".join(limit)))
    if a.procs_helper:
        out["fork burst"] = burst(a)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)

if __name__ == "__main__":
    main()
