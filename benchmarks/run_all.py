"""Run every benchmark in turn (about 10 minutes on 2 CPU cores) and print the README tables."""
from __future__ import annotations

import sys

from benchmarks import (accuracy, command_speed, latency, othergen, real, real_perturbed, report, rules, synth_speed,
                        train_speed)


def main() -> None:
    for mod in (real, real_perturbed, othergen, rules, accuracy, latency, command_speed, synth_speed, train_speed):
        print(f"== {mod.__name__}", flush=True)
        sys.argv = [mod.__name__]
        mod.main()
    report.main()


if __name__ == "__main__":
    main()
