"""Chapter 8's roads: the sizes of the smoke profile's model and the order roads are measured in."""
import pytest
import torch

from pi05perf import pipeline, roads


def test_sizes_keep_the_parameters_on_the_full_model():
    arch = pipeline.arch(True)
    assert roads.sizes(arch, arch, True, 200, 12, 144, [256, 1024], 2) == (200, 12, 144, [256, 1024])


def test_sizes_scale_the_roads_to_the_tiny_model():
    tiny, full = pipeline.arch(False), pipeline.arch(True)
    text, layers, tpi, calib = roads.sizes(tiny, full, False, 200, 12, 144, [256, 1024], 2)
    assert text == 8 and tpi == 1 and 0 < layers < tiny.layers
    assert layers == max(1, round(tiny.layers * 12 / full.layers))
    assert calib == sorted(calib) and all(t >= 1 for t in calib)
    with pytest.raises(ValueError, match="must be below the model depth"):
        roads.sizes(full, full, True, 200, 18, 144, [256], 2)


class FakeBench:
    """Records what was measured and released; `fail` names a variant whose measure raises."""

    def __init__(self, arch=None, *args, fail=None, log=None):
        self.arch, self.fail, self.log = arch, fail, log if log is not None else []

    def measure(self, variant, stage, sh):
        if variant == self.fail:
            raise RuntimeError("no FP8 kernel here\nsecond line")
        self.log.append(("measure", variant, stage, sh.views, sh.steps))
        return {"stage": stage, "median_ms": 1.0}

    def release(self, *kinds):
        self.log.append(("release",) + kinds)


def test_on_reference_model_measures_steps_views_and_fp8_then_releases(capsys):
    bench = FakeBench(fail="fp8_graph")
    R = pipeline.Shape(2, 8, 10, 10)
    rows, fp8_error = roads.on_reference_model(bench, R, "eager_fused", True, [5], [1], 2, 10, 8, 10)
    assert [r["test"] for r in rows] == ["5 steps", "5 steps"] + ["1 view"] * len(pipeline.STAGES)
    assert not any(r["fp8"] for r in rows)
    assert fp8_error == "RuntimeError: no FP8 kernel here" and "!! FP8 could not run" in capsys.readouterr().out
    assert bench.log[-1] == ("release", "fp8", "fast", "fused", "eager")
    assert roads.on_reference_model(FakeBench(), R, "eager_fused", False, [], [], 2, 10, 8, 10) == ([], None)


def test_on_new_models_builds_one_model_at_a_time(monkeypatch):
    log = []
    monkeypatch.setattr(roads.pb, "PipelineBench", lambda arch, *a: (log.append(("build", arch.layers, arch.tokens_per_image))
                                                                     or FakeBench(arch, log=log)))
    arch = pipeline.arch(False)
    rows = roads.on_new_models(arch, torch.device("cpu"), torch.float32, 1, [10], pipeline.Shape(2, 8, 10, 10),
                               "eager_fused", 1, 1, 5, 8, 10, 1)
    builds = [i for i, e in enumerate(log) if e[0] == "build"]
    releases = [i for i, e in enumerate(log) if e[0] == "release"]
    assert len(builds) == 2 and releases[0] < builds[1]  # the reduced-depth model is released before the next is built
    assert log[builds[0]][1] == 1 and log[builds[1]][2] == 1
    assert [r["test"] for r in rows][:3] == ["1 layers"] * 3 and rows[-1]["test"] == "1 tokens per image"
