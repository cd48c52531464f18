"""``tagloop demo``: one full learning cycle on embedded defaults, on simulated data.

1. starts a local GCS emulator (``gcp-storage-emulator``, in memory, a free port) and a bucket;
2. seeds it with SIMULATED corrections (``flows.simulate``): crops of a new brand whose codes carry a
   character the shipped model cannot write (``+``, serif print; ``synth.newprint.serif_plus``), mixed
   with ordinary tag crops, read by the shipped model the way the app would, "corrected" to the true
   code, plus a few bad uploads; the night may add ``+`` to the charset (``IngestConfig.extra_chars``);
3. runs the ``retrain`` flow (ephemeral Prefect, SQLite MLflow, local Evidently workspace)
   in a fresh demo home ``$TAGLOOP_HOME/demo/<stamp>/``, so every demo starts from the base model;
4. copies the bucket to that home (the emulator keeps nothing), stops the emulator and prints
   what was ingested and quarantined, champion vs challenger, the decision and why, and where
   the reports are.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from flows.settings import Settings
from loop.config import CycleConfig, cycle_config
from synth.newprint import PLUS

BUCKET = "tagloop-demo"


@dataclass
class DemoConfig:
    """Sizes chosen so the gate has evidence and the demo fits 5 minutes on 2 CPU cores (README, flows/README.md)."""

    # the new brand (codes with ``+``): until 2026-12-08 the demo's new print was ink-jet dot-matrix, which the
    # served reader already read so well that a night's gain (+1.5 points over ~600 held-out crops of 1,500) could
    # not be told from chance ("no decision"; flows/README.md, README "Learning loop")
    # 1,000 give ~400 held-out crops: a gain of ~9 points is the smallest they can show
    n_shifted: int = field(default=1000, metadata={"help": "simulated corrections of the new brand (codes with '+')"})
    n_normal: int = 60           # ordinary corrections
    n_bad: int = 5               # bad uploads (empty, truncated, bad JSON, bad charset, duplicate)
    heldout_share: float = 0.4   # of product codes held out: ~400 crops the gate compares both models on
    # 300: with 150 the schedule ended while the new brand's validation still rose (0.21 at step 150; the served
    # challenger 0.257 vs 0.049), with 300 it peaks at step 150 at 0.70 (0.757 vs 0.049); patience ends it at 250
    steps: int = field(default=300, metadata={
        "help": "fine-tune steps (the LR schedule; early stopping may end sooner)"})
    seed: int = field(default=2026, metadata={"help": "seed of the simulated stream and the fine-tune (same seed, "
                                                      "same decision)"})
    threads: int = 2             # torch threads of the fine-tune: fixed, so every demo trains the same weights
    anchor: int = 600            # crops the blend is chosen on (nightly 1,500): reading it for 3 blends is time
    # the rest of the recipe where it differs from the nightly defaults (loop.config.RECIPE names);
    # the regression suite and the gate are the defaults
    recipe: dict[str, Any] = field(default_factory=lambda: {
        "batch_size": 32, "eval_every": 50, "mix_replay": 0.1, "mix_synthetic": 0.4, "min_synthetic": 300,
        "budget_s": 0.0})   # no time budget: a clock-bound run would not train the same weights every time;
    #                         patience: the nightly 2 (3 until 2026-12-08: the same best step, 50 more steps)

    def __post_init__(self) -> None:
        if self.n_shifted < 1 or self.steps < 1:
            raise ValueError(f"demo: --n ({self.n_shifted}) and --steps ({self.steps}) must be at least 1 "
                             "(the bad uploads are made from the new brand's crops)")

    def cycle(self) -> CycleConfig:
        """The demo's ``CycleConfig``: its recipe, seed, thread count, held-out share and anchor; uploads
        ingested at once (no waiting age)."""
        cfg = cycle_config(steps=self.steps, seed=self.seed, **self.recipe)
        train = replace(cfg.finetune.train, threads=self.threads)
        return replace(cfg, finetune=replace(cfg.finetune, train=train), mix=replace(cfg.mix, anchor=self.anchor),
                       ingest=replace(cfg.ingest, min_age_s=0, heldout_share=self.heldout_share, extra_chars=PLUS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator() -> tuple[Any, str]:
    """In-memory GCS emulator on a free port; ``STORAGE_EMULATOR_HOST`` set; returns (server, url)."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ["STORAGE_EMULATOR_HOST"] = url
    return server, url


def quiet() -> None:
    """Keep the console to the demo's own lines (Prefect, MLflow and library chatter to WARNING)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "great_expectations", "alembic", "prefect", "httpx", "evidently"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # the emulator logs every 404 of an existence check (lock, state files) as an ERROR: expected here
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore")


def seed_bucket(storage, cfg: DemoConfig) -> list[Any]:
    """Simulated corrections: the shifted domain, ordinary crops, and the bad uploads."""
    from flows.simulate import seed_corrections
    from recognizer.checkpoint import base_model_dir
    from synth.newprint import serif_plus
    from synth.render import RenderConfig

    shifted = seed_corrections(storage, cfg.n_shifted, "2026-11-20", cfg.seed, model_dir=base_model_dir(),
                               n_bad=cfg.n_bad, stream=serif_plus)
    normal = seed_corrections(storage, cfg.n_normal, "2026-11-21", cfg.seed + 1, RenderConfig(),
                              base_model_dir(), n_bad=0)
    return [shifted, normal]


def copy_bucket(storage, dst: str) -> int:
    """Every object of the bucket into the directory ``dst`` (the emulator forgets on exit)."""
    n = 0
    for o in storage.list(""):
        path = os.path.join(dst, *o.name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(storage.read(o.name))
        n += 1
    return n


def run_demo(settings: Settings, cfg: DemoConfig | None = None) -> int:
    cfg = cfg or DemoConfig()
    quiet()
    t0 = time.time()
    home = settings.path("demo", time.strftime("%Y%m%d-%H%M%S"))
    os.environ["TAGLOOP_HOME"] = home
    extra_before = os.environ.get("TAGLOOP_EXTRA_CHARS")
    os.environ["TAGLOOP_EXTRA_CHARS"] = PLUS       # ops admit the new brand's character (the ingest flow reads it)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    print(f"tagloop demo -- everything below is SIMULATED data; state in {home}", flush=True)
    server, url = start_emulator()
    try:
        from google.cloud import storage as gcs

        from bucket.storage import open_storage

        gcs.Client(project="tagloop-demo").create_bucket(BUCKET)
        storage = open_storage(f"gs://{BUCKET}")
        print(f"[0/10] GCS emulator at {url}, bucket gs://{BUCKET}; seeding simulated corrections "
              f"({cfg.n_shifted} of a new brand with '{PLUS}' in its codes + {cfg.n_normal} ordinary + {cfg.n_bad} "
              "bad uploads)", flush=True)
        seeds = seed_bucket(storage, cfg)
        first = review_sprint(storage, cfg)
        summary = _retrain(storage.url, cfg)
        n_objects = copy_bucket(storage, os.path.join(home, "bucket"))
    finally:
        server.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        os.environ.pop("TAGLOOP_EXTRA_CHARS", None)
        if extra_before is not None:
            os.environ["TAGLOOP_EXTRA_CHARS"] = extra_before
    print_summary(summary, seeds, home, n_objects, time.time() - t0, first)
    return 0


def review_sprint(storage, cfg: DemoConfig):
    """``tagloop ingest``, then a labeler's answers: the new brand's codes fit no known layout, so ingest holds
    them for review (``ingest.review``); the simulated labeler confirms every held correction (the simulated
    labels are the true codes) in ``review/decisions.jsonl``, and the night's ingest releases them.
    Returns the first ingest's summary and the number of corrections confirmed."""
    from flows.ingest_flow import ingest
    from ingest.review import DECISIONS, QUEUE

    print("[review] tagloop ingest: corrections whose code fits no known layout wait for a labeler", flush=True)
    first = ingest(bucket=storage.url, min_age_s=0, heldout_share=cfg.heldout_share)
    queue = [json.loads(line) for line in storage.read(QUEUE).decode().splitlines() if line.strip()] \
        if first.n_review else []
    if queue:
        storage.write(DECISIONS, "".join(json.dumps({"key": q["key"], "decision": "confirm", "source": "simulated"})
                                         + "\n" for q in queue).encode(), "application/x-ndjson")
    print(f"[review] {first.n_review} held for review {first.review_reasons}; a labeler confirms {len(queue)} "
          "(SIMULATED decisions in review/decisions.jsonl)", flush=True)
    return first, len(queue)


def _retrain(bucket: str, cfg: DemoConfig):
    from flows.retrain import retrain

    return retrain(bucket=bucket, config=cfg.cycle(), progress=True)


def _em(metrics: dict, role: str, name: str) -> str:
    s = metrics.get(role, {}).get("sets", {}).get(name)
    return f"{s['exact_match']:.3f}" if s and s.get("n") else "  -  "


def print_summary(s, seeds: list[Any], home: str, n_objects: int, wall_s: float, first=None) -> None:
    """The human-readable end of the demo (``first``: ``review_sprint``'s ingest summary and confirmations)."""
    ing = s.ingest
    print("\n== tagloop demo summary (simulated data) ==")
    print(f"seeded: {sum(x.n_good for x in seeds)} corrections ({seeds[0].n_corrected + seeds[1].n_corrected} "
          f"where the model had misread the code) + {sum(x.n_bad for x in seeds)} bad uploads {seeds[0].bad}")
    if first is not None:
        f, confirmed = first
        print(f"first ingest: {f.n_new} new -> {f.n_accepted} accepted, {f.n_review} held for review "
              f"{f.review_reasons or ''}, {f.n_quarantined} quarantined {f.quarantine_reasons}; "
              f"a labeler confirmed {confirmed} (simulated)")
    print(f"{'night ingest' if first is not None else 'ingested'}: {ing['n_new']} new -> {ing['n_accepted']} "
          f"accepted, {ing.get('n_released', 0)} released from review, {ing['n_review']} held for review"
          f"{' ' + str(ing['review_reasons']) if ing.get('review_reasons') else ''}, {ing['n_quarantined']} "
          f"quarantined {ing['quarantine_reasons']}")
    print(f"dataset version {ing['dataset_version']}; training mix {s.mix}")
    ft = getattr(s, "finetune", None) or {}
    if ft.get("blends"):
        table = ", ".join(f"{b['alpha']:.2f}: {b['val_exact_match']:.3f}/"
                          + ("-" if b["anchor_exact_match"] is None else f"{b['anchor_exact_match']:.3f}")
                          for b in ft["blends"])
        kept = "the champion's own weights: every blend that learnt more read the anchor too much worse" \
            if ft["blend_alpha"] == 0 else f"weight {ft['blend_alpha']:.2f} on the fine-tuned model"
        print(f"fine-tune: best step {ft['best_step']}; blends (weight: validation / anchor exact match) {table}"
              f" -> kept {kept}")
    if s.challenger_version:
        print(f"\nexact match     champion v{s.champion_version}   challenger v{s.challenger_version}")
        for name in ("new_batch", "heldout", "regression"):
            print(f"  {name:<13} {_em(s.metrics, 'champion', name):>8}   {_em(s.metrics, 'challenger', name):>8}")
    print_decision(s)
    reports = os.path.join(home, "bucket", *s.report_uri.split("/", 3)[3].split("/")) if s.report_uri else None
    print("\nwhere to look:")
    if reports:
        print(f"  morning page   {reports}accuracy.html  (verdict, evidence, trend; drift.html beside it)")
        print(f"  all nights     {os.path.join(home, 'bucket', 'reports', 'index.html')}  (bucket copy; was {s.report_uri})")
    print(f"  quarantine     {os.path.join(home, 'bucket', 'quarantine')}  (one folder per item, reasons.json)")
    print(f"  MLflow         mlflow ui --backend-store-uri sqlite:///{home}/mlflow/mlflow.db  (run {s.mlflow_run_id})")
    print(f"  Evidently      evidently ui --workspace {home}/evidently")
    print(f"  bucket copy    {os.path.join(home, 'bucket')} ({n_objects} objects)")
    print(f"\ndemo wall time {wall_s:.0f} s")


HEADLINE = {"promoted": "PROMOTED: the challenger is the new champion",
            "refused": "NOT PROMOTED: a check failed, the champion stays",
            "no decision": "NO DECISION: too few crops to tell the models apart, the champion stays",
            "awaiting approval": "PASSED THE GATE: waiting for a person (tagloop approve VERSION --by NAME)"}


def print_decision(s) -> None:
    """The verdict, the overall paired test in words, and every failed check."""
    gate = s.gate or {}
    print(f"\ndecision: {HEADLINE.get(s.verdict or '', 'not promoted')}")
    ov = gate.get("overall") or {}
    if ov.get("n"):
        lo, hi = ov["ci"]
        mde = "no gain" if ov.get("mde") is None else f"{ov['mde']:+.3f}"
        pv = "p<0.0001" if ov["p"] < 1e-4 else f"p={ov['p']:.4f}"
        print(f"  overall: {ov['challenger_exact_match']:.3f} vs {ov['champion_exact_match']:.3f} on the same "
              f"{ov['n']} held-out crops ({ov['diff']:+.3f}, 95% CI {lo:+.3f}..{hi:+.3f})\n"
              f"           read right by the challenger alone: {ov['gained']}, by the champion alone: {ov['lost']}; "
              f"exact McNemar {pv}; "
              f"the smallest gain this batch can show: {mde}")
    checks = gate.get("checks") or []
    failed = [c for c in checks if c["passed"] is False]
    judged = [c for c in checks if c["passed"] is not None and c["name"] != "overall"]
    for c in failed:
        print(f"  FAILED {c['name']}: {c['detail']}")
    print(f"  {len(judged) - len([c for c in failed if c['name'] != 'overall'])} of {len(judged)} set, slice and "
          f"regression checks hold; {len(checks) - len(judged) - 1} slices too small or sets empty: reported, not judged")
    if not ov.get("n"):
        print(f"  {s.reason}")
