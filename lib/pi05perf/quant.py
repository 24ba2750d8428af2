"""Compatibility shim: the quantization code lives in `pi05perf.precision`, one module per
format. pipeline_bench, latency_model, triton_matmul and chapters 6-8 import it as
`pi05perf.quant`; this re-exports the same names."""
from .precision import *  # noqa: F401,F403
from .precision import __all__  # noqa: F401
