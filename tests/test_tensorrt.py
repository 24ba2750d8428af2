"""pi05perf.precision.tensorrt: guarded where TensorRT is absent."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from pi05perf import precision as Q


def test_tensorrt_guarded():
    have = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()
    assert Q.tensorrt_available() is have
    if importlib.util.find_spec("tensorrt") is None:
        assert Q.tensorrt_version() is None
        with pytest.raises(ImportError):
            Q.build_trt_engine("missing.onnx", int8=True)
