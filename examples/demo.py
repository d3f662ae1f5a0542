"""What `make demo` runs: fyerreg's examples, one after another.

    python examples/demo.py            # every demo
    python examples/demo.py memory     # only some, by name

A new demo is one more example file and one more entry in DEMOS.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent

DEMOS = {
    "memory": HERE / "memory_quickstart.py",
    "etcd": HERE / "etcd_demo.py",
    "greeter": HERE / "greeter_demo.py",
}


def main(argv: List[str]) -> int:
    names = argv or list(DEMOS)
    unknown = [name for name in names if name not in DEMOS]
    if unknown:
        print(f"unknown demo(s) {', '.join(unknown)}; choose from: {', '.join(DEMOS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name}: {DEMOS[name].name}")
        runpy.run_path(str(DEMOS[name]), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
