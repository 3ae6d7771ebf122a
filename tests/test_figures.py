"""Figures for TensorBoard: they render at a readable size with colour bars, and choose sensible
images and queries; the Pet download decision and its offline failure."""

from __future__ import annotations

import math
import urllib.error
from types import SimpleNamespace

import albumentations as A
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.patches import StepPatch

from segattn.data import OxfordPetsDataModule
from segattn.data.oxford_pets import should_download
from segattn.errors import DatasetLayoutError
from segattn.figures import (
    choose_queries,
    denormalize,
    gate_figure,
    image_dice,
    normalization_of,
    prediction_figure,
    self_attention_figure,
    varied_sample,
    worst_k,
)
from segattn.figures.self_attention import probability_norm
from segattn.models import UNetAttention
from segattn.training.attention_images import AttentionImageLogger, is_logging_epoch


def pixels(fig) -> tuple[int, int]:
    """(width, height) in pixels once drawn, as TensorBoard's add_figure would log it."""
    fig.canvas.draw()
    return fig.canvas.get_width_height()


def has_colour_bar(fig) -> bool:
    return any(ax.get_label() == "<colorbar>" for ax in fig.axes)


@pytest.fixture(scope="module")
def model_outputs():
    torch.manual_seed(0)
    net = UNetAttention(in_channels=3, num_classes=2, depth=2, base_channels=8, heads=2).eval()
    image = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[8:24, 10:26] = 1
    with torch.no_grad():
        logits, maps = net(image, return_attention=True)
    return image[0], mask, logits[0].argmax(0), maps


def test_denormalize_inverts_each_channel_with_the_pipelines_mean_and_std():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    pipeline = A.Compose([A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
    normalised = torch.from_numpy(pipeline(image=rgb)["image"]).permute(2, 0, 1)
    stats = normalization_of(pipeline)
    assert stats is not None and stats[0] == pytest.approx((0.485, 0.456, 0.406))
    np.testing.assert_allclose(denormalize(normalised, stats), rgb / 255.0, atol=1e-5)
    assert normalization_of(A.Compose([A.HorizontalFlip()])) is None
    grey = denormalize(torch.randn(1, 4, 5), None)  # unknown statistics: per-channel min-max, grey repeated
    assert grey.shape == (4, 5, 3) and grey.min() == 0 and grey.max() == 1
    with pytest.raises(ValueError, match="2 means"):
        denormalize(torch.zeros(3, 2, 2), ((0.1, 0.2), (1.0, 1.0)))


def test_prediction_figure_has_four_labelled_panels_the_dice_and_a_readable_size(model_outputs):
    image, mask, prediction, _ = model_outputs
    dice = image_dice(prediction, mask, 2)
    fig = prediction_figure(
        denormalize(image, None),
        mask,
        prediction,
        name="cat_1",
        dice=dice,
        class_names=["background", "pet"],
        original_size=(375, 500),
    )
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "ground truth", "prediction", "errors"]
    assert f"Dice {dice:.3f}" in fig._suptitle.get_text()
    width, height = pixels(fig)
    assert width >= 1000 and height >= 250
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["pet", "true positive", "false positive", "false negative"]


def test_image_dice_scores_foreground_classes_and_is_nan_without_any():
    target = torch.tensor([[0, 1], [1, 1]])
    assert image_dice(torch.tensor([[0, 1], [0, 1]]), target, 2) == pytest.approx(2 * 2 / (2 + 3))
    assert math.isnan(image_dice(torch.zeros(2, 2), torch.zeros(2, 2), 2))
    # ignored target pixels count for nothing, whatever is predicted there
    assert image_dice(
        torch.tensor([[2, 2], [0, 2]]), torch.tensor([[2, 2], [1, 1]]), 3, ignore_index=1
    ) == pytest.approx(1.0)


def test_self_attention_figure_has_a_row_per_head_and_a_fixed_scale_marking_one_over_n(model_outputs):
    image, mask, _, maps = model_outputs
    grid = maps.self_attention_size
    queries = choose_queries(mask, grid, 3)
    fig = self_attention_figure(denormalize(image, None), maps.self_attention[0], grid, queries, name="x", target=mask)
    heads, n = maps.self_attention.shape[1], grid[0] * grid[1]
    heatmaps = [
        im for ax in fig.axes if ax.get_label() != "<colorbar>" for im in ax.images if im.get_cmap().name == "magma"
    ]
    assert len(heatmaps) == heads * len(queries)  # one panel per head and query
    assert len(fig.axes) == 3  # photo, the panels' mosaic, colour bar: not one axes per panel (slow to draw)
    row_labels = sorted(
        t.get_text().split("\n")[0] for ax in fig.axes for t in ax.texts if t.get_text().startswith("head")
    )
    assert row_labels == [f"head {k}" for k in range(heads)]
    # Panel (head k, query j) shows query j's row of head k's weights.
    r, c, _ = queries[-1]
    last = np.asarray(heatmaps[-1].get_array())
    assert np.allclose(last, maps.self_attention[0, -1, r * grid[1] + c].reshape(grid).numpy())
    assert has_colour_bar(fig)
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    assert any(f"1/N = {1 / n:.3g}" in t.get_text() for t in bar.get_yticklabels())
    assert all(
        (im.norm.vmin, im.norm.vmax) == (probability_norm(n).vmin, 1.0) for im in heatmaps
    )  # the same scale every epoch
    averaged = self_attention_figure(
        denormalize(image, None), maps.self_attention[0], grid, queries, name="x", per_head=False
    )
    assert pixels(averaged)[1] < pixels(fig)[1]
    with pytest.raises(ValueError, match="weights must be"):
        self_attention_figure(denormalize(image, None), maps.self_attention[0], (3, 3), queries, name="x")


def test_gate_figure_shows_every_level_on_zero_to_one_with_histograms(model_outputs):
    image, mask, _, maps = model_outputs
    fig = gate_figure(denormalize(image, None), [g[0] for g in maps.gates], mask, name="x")
    gate_maps = [ax for ax in fig.axes if ax.get_title().startswith("level")]
    assert all(ax.images[0].get_cmap().name == "viridis" for ax in gate_maps)
    assert len(gate_maps) == len(maps.gates) >= 2
    assert all((ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (0.0, 1.0) for ax in gate_maps)
    assert has_colour_bar(fig)
    histograms = [ax for ax in fig.axes if ax.get_title().startswith("contrast")]
    assert len(histograms) == len(maps.gates)
    for ax in histograms:  # one filled density outline per class present (foreground and background)
        steps = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert sorted(p.get_label() for p in steps) == ["background", "foreground"]
        for p in steps:
            values, edges, _ = p.get_data()
            assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    width, height = pixels(fig)
    assert width >= 600 and height >= 300
    # A model without MHCA at some levels: the panels are titled by their real level.
    later = gate_figure(
        denormalize(image, None), [g[0] for g in maps.gates[1:]], mask, name="x", levels=maps.gate_levels[1:]
    )
    assert [ax.get_title().split(":")[0] for ax in later.axes if ax.get_title().startswith("level")] == [
        f"level {i}" for i in maps.gate_levels[1:]
    ]
    with pytest.raises(ValueError, match="levels"):
        gate_figure(denormalize(image, None), [g[0] for g in maps.gates], mask, name="x", levels=[1])


def test_queries_come_from_the_ground_truth_foreground_then_background():
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[:16, :16] = 1  # foreground: top-left quarter
    queries = choose_queries(mask, (4, 4), 3)
    assert [k for _, _, k in queries] == ["fg", "fg", "bg"]
    assert all(r < 2 and c < 2 for r, c, k in queries if k == "fg")
    assert all(not (r < 2 and c < 2) for r, c, k in queries if k == "bg")
    assert len({(r, c) for r, c, _ in queries}) == 3
    assert [k for _, _, k in choose_queries(torch.zeros(32, 32, dtype=torch.long), (4, 4), 2)] == ["bg", "bg"]


def test_sample_is_seeded_and_varied_and_worst_k_ranks_by_dice():
    names = [f"{breed}_{i}" for breed in ("Abyssinian", "Bengal", "pug", "beagle") for i in range(10)]
    first = varied_sample(names, 4, seed=3)
    assert first == varied_sample(names, 4, seed=3)
    assert len({names[i].split("_")[0] for i in first}) == 4  # one of each breed, not the first four names
    assert varied_sample(names, 4, seed=4) != first
    assert worst_k([0.9, 0.1, float("nan"), 0.5, 0.2], 2) == [1, 4]
    assert worst_k([0.9, 0.1, 0.5, 0.2], 2, exclude=[1]) == [3, 2]


def test_figures_are_logged_every_n_epochs_and_on_the_last():
    assert [e for e in range(12) if is_logging_epoch(e, 5, 12)] == [4, 9, 11]
    assert [e for e in range(3) if is_logging_epoch(e, 5, -1)] == []


def test_figures_wait_min_interval_s_between_drawings_except_on_the_last_epoch(monkeypatch):
    """Fast epochs (a GPU, a small dataset): every 5th epoch is a logging epoch, but a drawing
    under min_interval_s after the previous one is skipped; the last epoch always draws."""
    import segattn.training.attention_images as images

    clock = [0.0]
    monkeypatch.setattr(images.time, "monotonic", lambda: clock[0])
    callback = AttentionImageLogger(every_n_epochs=5, worst_k=0, min_interval_s=30)
    drawn = []
    monkeypatch.setattr(
        callback, "log_figures", lambda writer, trainer, module, dataset: drawn.append(trainer.current_epoch)
    )
    logger = TensorBoardLogger.__new__(TensorBoardLogger)
    monkeypatch.setattr(TensorBoardLogger, "experiment", property(lambda self: None))
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=0,
        max_epochs=30,
        loggers=[logger],
        datamodule=SimpleNamespace(dataset=lambda split: [0]),
    )
    module = SimpleNamespace(training=False, eval=lambda: None, train=lambda mode: None)
    for epoch in range(30):  # 4 s per epoch: logging epochs 4, 9, 14, ... are 20 s apart
        trainer.current_epoch = epoch
        callback.on_validation_epoch_start(trainer, module)
        callback.on_validation_end(trainer, module)
        clock[0] += 4.0
    assert drawn == [4, 14, 24, 29]  # 9, 19 skipped (20 s after a drawing), the last epoch (29) always
    with pytest.raises(ValueError, match="min_interval_s"):
        AttentionImageLogger(min_interval_s=-1)


def test_download_decision():
    assert should_download("auto", layout_present=False) and not should_download("auto", layout_present=True)
    assert should_download(True, layout_present=True) and not should_download(False, layout_present=False)
    with pytest.raises(ValueError, match="data.download: got 'maybe'"):
        should_download("maybe", False)
    with pytest.raises(ValueError, match="data.download"):
        OxfordPetsDataModule(root="/nowhere", download=1)


def test_auto_download_is_skipped_when_the_data_is_there(tiny_pets, monkeypatch):
    import torchvision.datasets

    def fail(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", fail)
    OxfordPetsDataModule(root=str(tiny_pets), download="auto").prepare_data()


def test_offline_auto_download_ends_with_the_missing_data_message(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def offline(root, **kwargs):
        calls.append((root, kwargs))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", offline)
    dm = OxfordPetsDataModule(root=str(tmp_path / "oxford-pets"), download="auto")
    with pytest.raises(DatasetLayoutError) as err:
        dm.prepare_data()
    assert calls and calls[0][1]["download"] is True
    message = str(err.value)
    assert "downloading it failed" in message and "no network" in message and "data.root=" in message


def test_worst_images_are_ranked_from_the_validation_steps_own_predictions(monkeypatch):
    callback = AttentionImageLogger(every_n_epochs=5, worst_k=1)
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=4,
        max_epochs=20,
        datamodule=SimpleNamespace(ignore_index=None),
    )
    module = SimpleNamespace(net=SimpleNamespace(num_classes=2))
    mask = torch.zeros(2, 4, 4, dtype=torch.long)
    mask[:, :2] = 1
    predictions = torch.stack([mask[0], 1 - mask[1]])  # "a" exactly right, "b" exactly wrong
    callback.on_validation_epoch_start(trainer, module)  # epoch 5 (counting from 1): a drawing epoch
    callback.on_validation_batch_end(
        trainer, module, {"predictions": predictions}, {"name": ["a", "b"], "mask": mask}, 0
    )
    assert callback.scores_from_validation(SimpleNamespace(names=["b", "a"])) == [0.0, 1.0]  # in the dataset's order
    assert callback.scores_from_validation(SimpleNamespace(names=["a", "b", "c"])) is None  # "c" was not validated
    assert callback.scores_from_validation(SimpleNamespace(names=["a", "a"])) is None  # names must identify images
    trainer.current_epoch = 5  # not a drawing epoch: nothing is collected
    callback.on_validation_epoch_start(trainer, module)
    callback.on_validation_batch_end(
        trainer, module, {"predictions": predictions}, {"name": ["a", "b"], "mask": mask}, 0
    )
    assert callback.scores_from_validation(SimpleNamespace(names=["a", "b"])) is None
