"""Shared code of the stand-in programs (fake-qmail-smtpd, fake-qmail-popup, env-dumper).

A stand-in is started by tcpserver / tcpserver-ssl as "prog": the client's
(plaintext) data on fd 0, its answers to fd 1.  It writes a record of what it
saw as JSON, so a test can read it:

  {"prog", "argv", "pid", "ppid", "uid", "gid", "euid", "egid", "groups",
   "env": {every variable}, "fds": {"0": "fifo"|"socket"|..., ...},
   "extra_fds": [fds open beyond 0, 1, 2], "done": bool, "exit": N, ...}

Where the record goes: --out=PATH, else $STANDIN_OUT.  When PATH is a directory,
the file is PATH/<prog>-<remote port>-<pid>.json (one per connection).  The
record is written at the start (done=false), after each change, and at the end
(done=true), each time by rename, so a reader never sees half of one.

Options common to every stand-in (before the positional arguments):
  --out=PATH   where the record goes
  --exit=N     exit code at the end (default 0)
"""
import json
import os
import stat
import sys


def fd_kind(fd):
    try:
        m = os.fstat(fd).st_mode
    except OSError:
        return "closed"
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "chr"),
                       (stat.S_ISREG, "file"), (stat.S_ISDIR, "dir")):
        if test(m):
            return name
    return "other"


def open_fds():
    """The fds open in this process beyond 0, 1, 2 (the listing's own fd left out)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    fds = []
    for n in names:
        fd = int(n)
        if fd <= 2:
            continue
        try:
            os.fstat(fd)        # the fd of the listdir above is closed by now
        except OSError:
            continue
        fds.append(fd)
    return sorted(fds)


class Standin:
    def __init__(self, prog, argv):
        self.out = os.environ.get("STANDIN_OUT")
        self.exit = 0
        self.opts = {}
        args = list(argv)
        while args and args[0].startswith("--") and "=" in args[0]:
            opt, val = args.pop(0)[2:].split("=", 1)
            if opt == "out":
                self.out = val
            elif opt == "exit":
                self.exit = int(val)
            else:
                self.opts[opt] = val
        self.args = args
        self.record = {
            "prog": prog, "argv": args, "pid": os.getpid(), "ppid": os.getppid(),
            "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "egid": os.getegid(),
            "groups": os.getgroups(), "env": dict(os.environ),
            "fds": {str(fd): fd_kind(fd) for fd in (0, 1, 2)}, "extra_fds": open_fds(),
            "done": False, "exit": self.exit,
        }
        port = os.environ.get("TCPREMOTEPORT") or os.environ.get("TCP6REMOTEPORT") or "x"
        if self.out and os.path.isdir(self.out):
            self.out = os.path.join(self.out, f"{prog}-{port}-{os.getpid()}.json")
        self.save()

    def save(self):
        if not self.out:
            return
        tmp = f"{self.out}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.record, f, indent=1, sort_keys=True)
        os.replace(tmp, self.out)

    def finish(self, **facts):
        self.record.update(facts)
        self.record["done"] = True
        self.save()
        try:
            sys.stdout.flush()
        except OSError:
            pass
        os._exit(self.exit)


class Lines:
    """CRLF (or LF) lines from fd 0, replies to fd 1, unbuffered."""

    def __init__(self):
        self.rd = open(0, "rb", closefd=False)
        self.outp = open(1, "wb", buffering=0, closefd=False)

    def readline(self):
        """A line without its line end; None at end of input."""
        line = self.rd.readline(65536)
        if not line:
            return None
        return line.rstrip(b"\r\n").decode("latin-1")

    def write(self, text):
        try:
            self.outp.write(text.encode("latin-1"))
        except (BrokenPipeError, ConnectionResetError):
            pass
