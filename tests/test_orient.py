"""Refitting the upside-down head: it learns to tell turned crops, and nothing else about the model changes."""
import shutil

import numpy as np
import pytest

from recognizer.checkpoint import load_model, read_config
from recognizer.engine import stored_onnx
from recognizer.orient import _accuracy, _pooled, fit_orient_head

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pools():
    from synth.pools import render_pool

    return render_pool(160, seed=8_800_101, workers=1), render_pool(60, seed=8_800_202, workers=1)


def test_refit_head_tells_turned_crops_and_leaves_every_reading_unchanged(base_model_dir, pools, tmp_path):
    import torch

    train, test = pools
    model_dir = str(tmp_path / "m")
    shutil.copytree(base_model_dir, model_dir)
    before, _, _ = load_model(model_dir)
    with torch.no_grad():                       # a head that knows nothing: every crop "upright"
        before.orient.weight.zero_()
        before.orient.bias.fill_(-1.0)
    from recognizer.checkpoint import save_model
    from recognizer.engine import export_onnx

    save_model(before, load_model(model_dir)[1], model_dir, meta=read_config(model_dir)["meta"])
    export_onnx(model_dir)
    record = fit_orient_head(model_dir, [train], n=480, p_photo=0.5, seed=1, log=lambda m: None)
    assert record["held_out_before"]["turned_called_turned"] == 0.0
    after, _, _ = load_model(model_dir)
    grays = [np.ascontiguousarray(test.image(i)) for i in range(len(test))]
    up, turned = _pooled(after, grays), _pooled(after, [np.ascontiguousarray(np.rot90(g, 2)) for g in grays])
    acc = _accuracy(after.orient.weight.detach().numpy()[0], float(after.orient.bias.detach()[0]), up, turned)
    assert acc["upright_called_upright"] >= 0.8 and acc["turned_called_turned"] >= 0.8   # crops it never saw
    # every other weight is the shipped one: the readings cannot change
    ref = load_model(base_model_dir)[0].state_dict()
    changed = [k for k, v in after.state_dict().items() if not torch.equal(v, ref[k])]
    assert changed == ["orient.weight", "orient.bias"]
    assert read_config(model_dir)["meta"]["orient_head"]["held_out_after"] == record["held_out_after"]
    assert stored_onnx(model_dir) is not None       # the stored graphs were exported from the new weights


def test_refit_refuses_pools_of_another_height(base_model_dir, tmp_path):
    from recognizer.pool import Pool

    model_dir = str(tmp_path / "m")
    shutil.copytree(base_model_dir, model_dir)
    tall = Pool.pack([np.full((48, 100), 200, np.uint8)], ["AB1234"], 48)
    with pytest.raises(ValueError, match="32 px"):
        fit_orient_head(model_dir, [tall], n=4, log=lambda m: None)


def test_training_turns_each_crop_within_its_own_width():
    import torch

    from recognizer.train import turned_180

    x = torch.arange(2 * 1 * 2 * 5, dtype=torch.float32).reshape(2, 1, 2, 5)
    x[0, :, :, 3:] = -1.0                          # crop 0 is 3 wide, padded right
    y = turned_180(x, torch.tensor([3, 5]))
    assert y[0, 0].tolist() == [[7.0, 6.0, 5.0, -1.0, -1.0], [2.0, 1.0, 0.0, -1.0, -1.0]]   # padding stays right
    assert torch.equal(y[1], torch.flip(x[1], dims=(1, 2)))
