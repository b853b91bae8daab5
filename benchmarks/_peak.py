"""Run a module as ``__main__`` and write its own peak RSS at exit.

    python -m benchmarks._peak OUT_FILE MODULE [ARGS...]

Why not the parent's ``wait4`` (``ru_maxrss``): Linux carries the high-water mark of the
memory a process had before ``exec`` into the new program's, so a child started by a large
parent reports at least the parent's size. ``VmHWM`` in ``/proc/self/status`` belongs to the
program's own address space only. The figure, in KiB, is written to OUT_FILE.
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys
from pathlib import Path


def peak_rss_kib() -> int:
    """This program's own peak RSS (VmHWM), or ``ru_maxrss`` where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    out, module = Path(sys.argv[1]), sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    atexit.register(lambda: out.write_text(str(peak_rss_kib())))
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
