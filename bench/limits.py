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
"""
import argparse, json, os, statistics, subprocess, sys, threading, time

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

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seccell", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("-n", type=int, default=200, help="loop size (subprocess runs; mmaps are 10x)")
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
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)

if __name__ == "__main__":
    main()
