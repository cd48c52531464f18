"""What the end-to-end tests share: the small nightly cycle they run and a fresh bucket on the emulator."""
from __future__ import annotations

import uuid
from dataclasses import replace

from ingest.pipeline import IngestConfig
from loop.config import CycleConfig, cycle_config
from loop.gate import GateConfig
from loop.mix import MixConfig
from loop.regression import RegressionConfig
from recognizer.finetune import FinetuneConfig

# Small but real: 150 adapter steps (the nightly LR, 2e-3) on 400 corrections from the new domain, with
# 30 % of their product codes held out (about 100 crops), so the first night wins by a margin no noise
# crosses: +0.107 (0.466 vs 0.359, n=103: 11 crops) where the gate needs +0.005 (1 crop). The fine-tune
# runs with 2 torch threads whatever the machine or the tests before did, so this is the same on every
# run (issue 19); other rounding (the same night with 1 thread) measured +0.049, so the test asks for +0.03.
# The regression suite is tiny here (6 crops per brand family, ~70 crops, one crop = 1.5 points),
# so its overall tolerance is wide and its slices are reported, not checked (min_slice_n);
# the strict defaults are covered by tests/test_loop_gate.py. The poisoned night is kept out on
# the real sets (held-out, overall), not on the suite: the overall paired test finds no win, so the
# verdict is "no decision" (or "refused" had a check failed). The first night's win is significant
# (exact McNemar). The blend choice (recognizer.finetune) gets the same wide tolerance on its
# 110-crop anchor.
GATE = CycleConfig(gate=GateConfig(min_slice_n=1000), regression=RegressionConfig(per_family=6, min_per_condition=1),
                   ingest=IngestConfig(min_age_s=0, heldout_share=0.3), mix=MixConfig(min_val=30, anchor=110),
                   finetune=FinetuneConfig(train=replace(FinetuneConfig().train, threads=2, seconds=None)),
                   embed_evidently=False)
NIGHT = dict(batch_size=32, lr=2e-3, eval_every=50, patience=3, mix_new=0.5, mix_replay=0.1, mix_synthetic=0.4,
             min_synthetic=300, workers=1, regression_tolerance=0.15)
SMALL = {"config": cycle_config(GATE, **{**NIGHT, "steps": 150})}
SHORT = {"config": cycle_config(GATE, **{**NIGHT, "steps": 40, "eval_every": 20})}   # the orchestration is tested


def new_bucket(project: str = "tagloop-e2e"):
    from google.cloud import storage as gcs

    from bucket.storage import open_storage

    name = f"e2e-{uuid.uuid4().hex[:10]}"
    gcs.Client(project=project).create_bucket(name)
    return open_storage(f"gs://{name}")
