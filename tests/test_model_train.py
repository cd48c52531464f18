import numpy as np
import pytest
import torch

from recognizer.checkpoint import ModelError, load_model, save_model
from recognizer.data import PoolDataset, WidthBucketSampler, collate
from recognizer.evaluate import read_batch
from recognizer.model import CRNN, ModelConfig
from recognizer.tokenizer import CTCTokenizer
from recognizer.train import TrainConfig, fit, loss_on_batch


def _model(seed=0, **kw) -> tuple[CRNN, CTCTokenizer]:
    torch.manual_seed(seed)
    tok = CTCTokenizer()
    return CRNN(ModelConfig(num_classes=tok.num_classes, **kw)), tok


@pytest.mark.parametrize("width", [16, 100, 257])
def test_output_shapes_in_train_and_eval(width):
    m, tok = _model()
    x = torch.randn(3, 1, 32, width)
    for mode in (m.train, m.eval):
        mode()
        logp, orient = m(x)
        t = m.features(x).shape[0]
        assert logp.shape == (t, 3, tok.num_classes)
        assert orient.shape == (3,)
        assert t == (width + 3) // 4 or t == width // 4
        assert torch.allclose(logp.exp().sum(-1), torch.ones(t, 3), atol=1e-4)


def test_rejects_other_heights():
    with pytest.raises(ValueError):
        CRNN(ModelConfig(num_classes=10, img_height=48))


def test_width_buckets_group_similar_widths():
    widths = np.random.default_rng(0).integers(20, 400, 1000)
    batches = list(WidthBucketSampler(widths, 32, seed=1))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(widths[b]) for b in batches if len(b) > 1])
    assert spread < 0.3 * np.ptp(widths)


@pytest.mark.slow
def test_loss_goes_down_on_a_tiny_set(tiny_pool, tmp_path):
    m, tok = _model(channels=(16, 32, 48, 64), hidden=48)
    ds = PoolDataset(tiny_pool, tok, train=False)
    batch = collate([ds[i] for i in range(32)])
    cfg = TrainConfig(steps=60, batch_size=32, lr=3e-3, warmup=5, workers=0, ckpt_every=1000)
    m.train()
    before = float(loss_on_batch(m, batch, cfg, torch.device("cpu"))[0].detach())
    fit(m, tok, tiny_pool, cfg, str(tmp_path / "run"), log=lambda s: None)
    m.train()
    after = float(loss_on_batch(m, batch, cfg, torch.device("cpu"))[0].detach())
    assert after < 0.7 * before


def test_checkpoint_round_trip_gives_identical_predictions(tiny_pool, tmp_path):
    m, tok = _model(seed=3)
    m.eval()
    path = save_model(m, tok, str(tmp_path / "art"), {"note": "test"})
    m2, tok2, cfg = load_model(path)
    assert tok2.charset == tok.charset and cfg["meta"]["note"] == "test"
    grays = [tiny_pool.image(i) for i in range(8)]
    x = torch.randn(2, 1, 32, 120)
    with torch.inference_mode():
        assert torch.equal(m(x)[0], m2(x)[0])
    assert read_batch(m, tok, grays) == read_batch(m2, tok2, grays)


def test_artifact_is_not_a_pickle(tmp_path):
    m, tok = _model()
    path = save_model(m, tok, str(tmp_path / "art"))
    head = open(f"{path}/model.safetensors", "rb").read(16)
    assert not head.startswith(b"\x80")            # pickle protocol marker
    with pytest.raises(ModelError, match="model directory not found"):
        load_model(str(tmp_path / "missing"))


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tiny_pool, tmp_path):
    m, tok = _model(channels=(8, 16, 16, 16), hidden=16)
    out = str(tmp_path / "run")
    fit(m, tok, tiny_pool, TrainConfig(steps=4, batch_size=16, workers=0, ckpt_every=2), out, log=lambda s: None)
    logs = []
    m2, _ = _model(channels=(8, 16, 16, 16), hidden=16)
    res = fit(m2, tok, tiny_pool, TrainConfig(steps=6, batch_size=16, workers=0, ckpt_every=2), out, log=logs.append)
    assert any("resumed from step 4" in l for l in logs)
    assert res["step"] == 6


def test_teacher_right_and_distillation_loss():
    """Distillation only where the teacher reads the label exactly; zero when the student equals the teacher."""
    from recognizer.train import distill_loss, teacher_right

    def onehot(paths, k=5):
        x = torch.full((len(paths[0]), len(paths), k), -9.0)
        for b, path in enumerate(paths):
            for t, c in enumerate(path):
                x[t, b, c] = 0.0
        return x.log_softmax(-1)

    teacher = onehot([[1, 1, 0, 2, 2, 0], [3, 0, 0, 0, 0, 0]])
    lens = torch.tensor([6, 6])
    targets, tlens = torch.tensor([1, 2, 3, 3]), torch.tensor([2, 2])
    mask = teacher_right(teacher, lens, targets, tlens)
    assert mask.tolist() == [True, False]                      # "12" right; "3" is not "33"
    assert distill_loss(teacher, teacher, lens, mask).item() == pytest.approx(0.0, abs=1e-6)
    student = onehot([[1, 1, 0, 4, 4, 0], [4, 4, 4, 4, 4, 4]])
    assert distill_loss(student, teacher, lens, mask).item() > 1.0
    only_wrong = distill_loss(student, teacher, lens, torch.tensor([False, True]))
    assert only_wrong.item() > 1.0 and distill_loss(student, teacher, lens, torch.tensor([False, False])).item() == 0.0


def test_a_time_boxed_run_finishes_its_schedule_and_stops_on_time(tmp_path, tiny_pool):
    import time

    from recognizer.train import lr_at

    cfg = TrainConfig(steps=100_000, seconds=4.0, warmup=2, batch_size=16, eval_every=10**9, ckpt_every=10**9,
                      workers=0)
    assert lr_at(50, cfg, elapsed=0.0) == pytest.approx(cfg.lr)
    assert lr_at(50, cfg, elapsed=2.0) == pytest.approx(cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5))
    assert lr_at(50, cfg, elapsed=4.0) == pytest.approx(cfg.lr * cfg.min_lr_frac)
    m, tok = _model()
    t = time.time()
    res = fit(m, tok, tiny_pool, cfg, str(tmp_path / "run"))
    assert 0 < res["step"] < 100_000 and time.time() - t < 30
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert state["step"] == res["step"] and state["extra"]["train_s"] >= 4.0   # saved at the end, clock kept
