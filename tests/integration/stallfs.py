"""A FUSE file system whose directory `slow`, files `data` and `data0` to
`data7` (4 KiB of "a" each), file `flush` and files `sink0` to `sink7` can
be made to stall: the stand-in for a hung network or FUSE mount under a
command's working directory, behind memory it has mapped, behind a
descriptor it closes (`flush`: its close, the kernel's FLUSH, blocks), or
behind a file written to (`sink*`: writable by anyone, empty, take and drop
what is written; a write blocks). Run as root with /usr/bin/python3 (python3-fusepy; Debian names the module fusepy):

    stallfs.py MOUNTPOINT

Commands on stdin, one per line:
    arm      from now on a lookup of /slow, a read of /data*, a close of
             /flush or a write to /sink* blocks
             until `release`
             (answered `armed`)
    release  answer the blocked lookups (and stop blocking)
    release_slow  the same for lookups of /slow only (the rest stays armed;
             answered `slow released`)
Reports on stdout, one per line:
    mounted        (once the mount answers)
    blocked PID    a lookup or read by process PID is being held
"""
import errno
import os
import stat
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations, fuse_get_context

armed = threading.Event()
released = threading.Event()
out_lock = threading.Lock()


def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class StallFS(Operations):
    def getattr(self, path, fh=None):
        now = time.time()
        if path == "/":
            mode = stat.S_IFDIR | 0o755
        elif path == "/slow":
            hold_slow()
            mode = stat.S_IFDIR | 0o755
        elif path in FILES:
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_uid": 0, "st_gid": 0,
                    "st_size": len(DATA), "st_atime": now, "st_mtime": now, "st_ctime": now}
        elif path in SINKS:
            return {"st_mode": stat.S_IFREG | 0o666, "st_nlink": 1, "st_uid": 0, "st_gid": 0,
                    "st_size": 0, "st_atime": now, "st_mtime": now, "st_ctime": now}
        else:
            raise FuseOSError(errno.ENOENT)
        return {"st_mode": mode, "st_nlink": 2, "st_uid": 0, "st_gid": 0, "st_size": 0,
                "st_atime": now, "st_mtime": now, "st_ctime": now}

    def readdir(self, path, fh):
        return [".", ".."] + (["slow"] + [f[1:] for f in FILES + SINKS] if path == "/" else [])

    def open(self, path, flags):
        if path not in FILES and path not in SINKS:
            raise FuseOSError(errno.ENOENT)
        return 0

    def write(self, path, data, offset, fh):
        if path not in SINKS:
            raise FuseOSError(errno.EROFS)
        hold()
        return len(data)

    def truncate(self, path, length, fh=None):
        if path not in SINKS:
            raise FuseOSError(errno.EROFS)
        return 0

    def read(self, path, size, offset, fh):
        if path.startswith("/data"):
            hold()
        return DATA[offset:offset + size]

    def flush(self, path, fh):
        if path == "/flush":
            hold()
        return 0


DATA = b"a" * 4095 + b"\0"
FILES = ["/data"] + ["/data%d" % i for i in range(8)] + ["/flush"]
SINKS = ["/sink%d" % i for i in range(8)]


def hold():
    """Block the calling request while armed (and not released)."""
    if armed.is_set() and not released.is_set():
        say("blocked %d" % fuse_get_context()[2])
        released.wait()


slow_released = threading.Event()


def hold_slow():
    """A lookup of /slow: as hold(), but `release_slow` answers it too."""
    if armed.is_set() and not released.is_set() and not slow_released.is_set():
        say("blocked %d" % fuse_get_context()[2])
        while not (slow_released.is_set() or released.is_set()):
            slow_released.wait(0.05)


def commands():
    for line in sys.stdin:
        word = line.strip()
        if word == "arm":
            armed.set()
            say("armed")
        elif word == "release":
            released.set()
        elif word == "release_slow":
            slow_released.set()
            say("slow released")
    released.set()  # stdin closed: never leave a lookup blocked


def announce(mountpoint):
    # the mount answers once a stat of the root reaches us
    while not os.path.ismount(mountpoint):
        time.sleep(0.01)
    say("mounted")


def main():
    mountpoint = sys.argv[1]
    threading.Thread(target=commands, daemon=True).start()
    threading.Thread(target=announce, args=(mountpoint,), daemon=True).start()
    # every path walk asks again: nothing is cached
    FUSE(StallFS(), mountpoint, foreground=True, allow_other=True, attr_timeout=0, entry_timeout=0,
         negative_timeout=0, direct_io=False, kernel_cache=False)


if __name__ == "__main__":
    main()
