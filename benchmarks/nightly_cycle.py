"""Nightly cycle: 1k simulated corrections + 5k synthetic crops, CPU, through the Prefect ``retrain`` flow.

Wall time per stage and the orchestration overhead share: (flow wall time - time spent inside
the stage functions) / flow wall time. Prefect's ephemeral server start is timed separately
(a trivial flow run first), so the share is the cost of running the stages as tasks.

    python -m benchmarks.nightly_cycle [--n 1000] [--synthetic 5000] [--steps CAP] [--budget-s SECONDS]
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import time
from dataclasses import replace
from typing import Any, Callable

from benchmarks.common import save
from flows.settings import setup_environment
from loop.config import cycle_config
from recognizer.checkpoint import base_model_dir


def timed(fn: Callable[..., Any], name: str, spent: dict[str, float]) -> Callable[..., Any]:
    """``fn`` that adds its own wall time to ``spent[name]``."""
    @functools.wraps(fn)
    def run(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
    return run


def instrument(spent: dict[str, float]) -> None:
    """Time the plain function inside every retrain task (what the flow would run without Prefect)."""
    from loop.cycle import STAGE_ORDER
    from tasks.retrain import TASK_STAGES

    for name in STAGE_ORDER:
        task = getattr(TASK_STAGES, name)
        task.fn = timed(task.fn, name, spent)


def seed(bucket: str, n: int, shifted_share: float) -> dict:
    """``n`` simulated corrections (dot-matrix domain + ordinary crops) read by the base model."""
    from flows.simulate import DOT_MATRIX_DOMAIN, seed_corrections
    from bucket.storage import open_storage
    from synth.render import RenderConfig

    storage = open_storage(bucket)
    k = int(n * shifted_share)
    a = seed_corrections(storage, k, "2026-11-20", 11, RenderConfig(**DOT_MATRIX_DOMAIN), base_model_dir(), n_bad=5)
    b = seed_corrections(storage, n - k, "2026-11-21", 12, RenderConfig(), base_model_dir(), n_bad=0)
    return {"shifted": a.n_good, "ordinary": b.n_good, "bad": a.n_bad}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="simulated corrections")
    ap.add_argument("--synthetic", type=int, default=5000, help="unique synthetic crops in the mix (min_synthetic)")
    ap.add_argument("--steps", type=int, default=None,
                    help="fine-tune step cap (default: the nightly recipe's; a plateau or the time budget may end sooner)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="fine-tune time budget in seconds (default: the nightly recipe's; 0: none)")
    ap.add_argument("--shifted-share", type=float, default=0.8, help="share of corrections from the dot-matrix domain")
    args = ap.parse_args()
    settings = setup_environment()
    root = settings.path("bench", "nightly_cycle")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "bucket"))
    os.environ["TAGLOOP_HOME"] = os.path.join(root, "home")
    load_start = os.getloadavg()[0]
    t = time.perf_counter()
    seeded = seed(os.path.join(root, "bucket"), args.n, args.shifted_share)
    seed_s = time.perf_counter() - t

    from prefect import flow

    from flows.retrain import retrain

    t = time.perf_counter()
    flow(lambda: None, name="warm-up")()                 # starts the ephemeral Prefect server
    startup_s = time.perf_counter() - t
    spent: dict[str, float] = {}
    instrument(spent)
    t = time.perf_counter()
    recipe = {k: getattr(args, k) for k in ("steps", "budget_s") if getattr(args, k) is not None}
    config = cycle_config(min_synthetic=args.synthetic, **recipe)
    config = replace(config, ingest=replace(config.ingest, min_age_s=0))
    s = retrain(bucket=os.path.join(root, "bucket"), config=config, progress=True)
    wall = time.perf_counter() - t
    inside = sum(spent.values())
    result = {"config": vars(args), "seeded": seeded, "seed_s": round(seed_s, 1),
              "prefect_startup_s": round(startup_s, 1), "flow_wall_s": round(wall, 1),
              "stage_function_s": {k: round(v, 2) for k, v in spent.items()},
              "stage_wall_s": s.timings_s, "orchestration_overhead_s": round(wall - inside, 1),
              "orchestration_overhead_share": round((wall - inside) / wall, 4),
              "overhead_share_with_startup": round((wall + startup_s - inside) / (wall + startup_s), 4),
              "recipe": {"steps": config.finetune.train.steps, "budget_s": config.finetune.train.seconds,
                         "eval_every": config.finetune.train.eval_every, "patience": config.finetune.patience},
              "finetune": {k: v for k, v in s.finetune.items()},
              "mix": s.mix, "promoted": s.promoted, "verdict": s.verdict, "reason": s.reason,
              "exact_match": {r: {k: None if v["exact_match"] is None else round(v["exact_match"], 4)
                                  for k, v in m["sets"].items()}
                              for r, m in s.metrics.items()},
              "load_avg_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
              "note": "2 CPU cores shared with other sessions: see load_avg_1m_start_end"}
    print(result, flush=True)
    print("wrote", save("nightly_cycle", result))


if __name__ == "__main__":
    main()
