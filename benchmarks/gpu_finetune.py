"""GPU check of the fine-tune path (bf16 autocast on CUDA) on the dot-matrix domain of the learning curve.

    python -m benchmarks.gpu_finetune OUT_DIR     (on a machine with a CUDA GPU)
"""
import json
import os
import sys
import time
import torch
from synth.pools import render_pool
from recognizer.finetune import FinetuneConfig, finetune
from recognizer.train import TrainConfig
from recognizer.checkpoint import load_model
from recognizer.evaluate import evaluate_pool

DOMAIN = {"p_dot_matrix": 1.0, "p_tilt": 0.1, "max_tilt": 12.0, "p_blur": 0.1, "p_motion": 0.0,
          "p_low_res": 0.03, "p_curve": 0.0, "p_perspective": 0.2}

if __name__ == "__main__":
    out = sys.argv[1]
    t = time.time()
    train = render_pool(4000, 11, workers=14, cfg_dict=DOMAIN)
    val = render_pool(500, 12, workers=14, cfg_dict=DOMAIN)
    test = render_pool(1000, 13, workers=14, cfg_dict=DOMAIN)
    print("rendered in", round(time.time() - t, 1), "s", flush=True)
    res = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    m, tok, _ = load_model("recognizer/base_model", device="cuda")
    res["base_test_em"] = evaluate_pool(m, tok, test)["exact_match"]
    for dev, bs, steps in (("cuda", 256, 1500),):
        cfg = FinetuneConfig(train=TrainConfig(steps=steps, batch_size=bs, lr=7e-4, warmup=50, eval_every=250,
                                               ckpt_every=250, workers=8, device=dev), patience=3)
        t = time.time()
        r = finetune("recognizer/base_model", train, val, cfg, os.path.join(out, dev), log=lambda s: print(s, flush=True))
        m, tok, _ = load_model(r.model_dir, device="cuda")
        res[dev] = {"batch_size": bs, "steps": r.steps, "best_step": r.best_step, "img_per_s": round(r.img_per_s, 1),
                    "wall_s": round(time.time() - t, 1), "val_em": r.best_exact_match,
                    "test_em": evaluate_pool(m, tok, test)["exact_match"]}
        print(json.dumps(res), flush=True)
    json.dump(res, open(os.path.join(out, "gpu_finetune.json"), "w"), indent=1)
