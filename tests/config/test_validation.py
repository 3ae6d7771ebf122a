"""segattn.config.validation: bad settings are refused up front, named with their value and what is allowed."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from PIL import Image

from segattn.config import validate_train_config
from segattn.config.validation import fitted_problems
from segattn.models.cross_attention import MultiHeadCrossAttentionGate
from segattn.models.settings import size_problem
from tests.helpers.configs import compose_train, problems_of
from tests.helpers.files import folder


def test_default_and_experiment_configs_are_valid():
    for experiment in ("smoke", "pets_binary", "pets_trimap", "isbi2012", "glas"):
        validate_train_config(compose_train(f"experiment={experiment}"))
    validate_train_config(compose_train("model.cross_attention_levels=[1]"))


def test_the_glas_preset_gates_each_pixel_without_batchnorm():
    cfg = compose_train("experiment=glas")
    model = instantiate(cfg.model, in_channels=3, num_classes=2)
    gates = [m for m in model.modules() if isinstance(m, MultiHeadCrossAttentionGate)]
    assert len(gates) == cfg.model.depth
    assert all(g.gate_projection.out_features == 1 and g.gate_norm is None for g in gates)
    assert all(g.gate_projection.bias is not None for g in gates)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model.heads=3", "model.heads: got 3, which does not divide the 32 channels of the bottleneck"),
        (
            "model.cross_attention_levels=[0,5]",
            "model.cross_attention_levels: got [0, 5]; expected null (every level) or a non-empty list",
        ),
        (
            "data.image_size=30",
            "data.image_size: got 30; must be a multiple of 2**depth = 4 (depth=2; nearest valid: 28 or 32)",
        ),
        ("module.lr=-0.1", "module.lr: got -0.1; expected a learning rate > 0"),
        ("module.loss=focal", "module.loss: got 'focal'; allowed: ce, dice, ce+dice"),
        ("module.scheduler=step", "module.scheduler: got 'step'; allowed: cosine, onecycle, none"),
        ("model.depth=two", "model.depth: got 'two' (str); expected int"),
        ("module.lr=fast", "module.lr: got 'fast' (str); expected float"),
        ("+model.dropout=0.1", "model.dropout: unknown key; allowed keys:"),
        ("+module.momentum=0.9", "module.momentum: unknown key; allowed keys:"),
        ("+trainer.max_epoch=3", "trainer.max_epoch: unknown key"),
        ("data.batch_size=0", "data.batch_size: got 0; expected an integer >= 1"),
        ("module.nonfinite_loss=ignore", "module.nonfinite_loss: got 'ignore'; allowed: error, skip"),
        ("ckpt_path=/nonexistent/last.ckpt", "ckpt_path: /nonexistent/last.ckpt is not a file"),
    ],
)
def test_bad_settings_are_named_with_value_and_what_is_allowed(override, expected):
    assert expected in problems_of(override)


def test_class_weights_without_a_cross_entropy_term_are_refused():
    assert "module.class_weights: they weight the cross-entropy term, and loss=dice has none" in problems_of(
        "module.loss=dice", "module.class_weights=[1.0,2.0]"
    )
    validate_train_config(
        compose_train("module.loss=ce+dice", "module.class_weights=[1.0,2.0]")
    )  # weights the CE term: fine


def test_cross_attention_levels_are_checked_even_without_cross_attention():
    """The model checks the levels whatever the switch says; the config check must catch it first."""
    assert "model.cross_attention_levels: got [9]; expected null" in problems_of(
        "model.cross_attention=false", "model.cross_attention_levels=[9]"
    )


def test_all_problems_are_reported_at_once():
    message = problems_of("model.heads=3", "module.lr=-1.0")
    assert "model.heads" in message and "module.lr" in message


def test_unknown_task_name_is_rejected_before_loading():
    message = problems_of("data=oxford_pets", "data.task=segment")
    assert "data.task" in message and "'segment'" in message and "binary" in message


def test_2_an_empty_validation_split_is_refused_naming_the_fix(tmp_path):
    root = folder(tmp_path / "d", splits=("train",))
    cfg = compose_train("data=folder", f"data.root={root}")
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert (
        "the validation split is empty" in problems and "best.ckpt" in problems and f"{root / 'val'}/images" in problems
    )
    cfg = compose_train("data=folder", f"data.root={tmp_path / 'unsplit'}", "data.val_fraction=0")
    flat = tmp_path / "unsplit"
    for i in range(4):
        (flat / "images").mkdir(parents=True, exist_ok=True), (flat / "masks").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(flat / "images" / f"{i}.png")
        Image.new("L", (8, 8)).save(flat / "masks" / f"{i}.png")
    assert "set data.val_fraction to a fraction > 0" in "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))


def test_2_an_empty_training_split_is_refused(tmp_path):
    """Two image pairs and the default fractions: validation and test take one each, training none."""
    flat = tmp_path / "two"
    (flat / "images").mkdir(parents=True), (flat / "masks").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(flat / "images" / f"{i}.png")
        Image.new("L", (8, 8)).save(flat / "masks" / f"{i}.png")
    cfg = compose_train("data=folder", f"data.root={flat}")
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert "the training split is empty (val 1, test 1 images)" in problems and "data.val_fraction" in problems


def test_5_type_errors_and_class_weights_get_the_up_front_message():
    message = problems_of("data.image_size=64.5", "data.batch_size=abc")
    assert "data.image_size: got 64.5 (float); expected int" in message
    assert "data.batch_size: got 'abc' (str); expected int" in message
    cfg = compose_train("module.class_weights=[1.0]")
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert "module.class_weights: got 1 values [1.0]; the data has 2 classes ['background', 'shape_1']" in problems


def test_6_a_single_image_batch_at_a_1x1_bottleneck_is_refused_and_sizes_are_named_once():
    cfg = compose_train(
        "model.depth=5", "data.image_size=32", "data.num_train=17", "model.base_channels=4", "model.heads=1"
    )
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert "1x1 bottleneck" in problems and "data.image_size >= 64" in problems
    assert "9 training images per process" in "\n".join(
        fitted_problems(cfg, instantiate(cfg.data), 2)
    )  # counted per process
    cfg = compose_train(
        "model.depth=5", "data.image_size=32", "data.num_train=16", "model.base_channels=4", "model.heads=1"
    )
    assert not fitted_problems(cfg, instantiate(cfg.data), 1)  # batches of 4 only: fine
    assert size_problem("size", 64, 8).endswith("(depth=8; nearest valid: 256)")
    assert size_problem("size", 30, 2).endswith("nearest valid: 28 or 32)") and size_problem("size", 32, 2) is None
    assert "256 or 256" not in problems_of("model.depth=8", "data.image_size=64")


def test_patch_and_window_settings_are_checked_before_training():
    from segattn.config.validation import inference_problems

    base = dict(mode="sliding_window", window=None, overlap=0.5, batch_size=4, tta=False)
    assert inference_problems(base, {"patch_size": 256}, 4) == []
    problems = inference_problems({**base, "window": 100}, {"patch_size": 200}, 4)
    assert any(
        "data.patch_size: got 200; must be a multiple of 2**depth = 16 (depth=4; nearest valid: 192 or 208)" in p
        for p in problems
    )
    assert any("inference.window: got 100" in p for p in problems)
    assert any("without data.patch_size" in p for p in inference_problems(base, {"patch_size": None}, 4))
    assert any(
        "set inference.mode=sliding_window" in p
        for p in inference_problems({**base, "mode": "resize"}, {"patch_size": 64}, 4)
    )
