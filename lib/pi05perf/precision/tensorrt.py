"""TensorRT: build an engine from an explicit-Q/DQ ONNX file and time it. The real build
path for Thor (JetPack) users; on a machine without TensorRT every entry point reports
`tensorrt_available() == False` or raises ImportError.
"""
from __future__ import annotations

import time

import torch

from .base import FP8


_TRT_KEEPALIVE: list = []


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def tensorrt_version() -> str | None:
    try:
        import tensorrt as trt
    except Exception:
        return None
    return trt.__version__


def build_trt_engine(onnx_path: str, fp8: bool = False, int8: bool = False, fp16: bool = False,
                     bf16: bool = False, shapes: dict | tuple | None = None,
                     strongly_typed: bool | None = None, workspace_bytes: int = 4 << 30,
                     log: list[str] | None = None):
    """Build a TensorRT engine from an explicit-Q/DQ ONNX file (TensorRT 10 / 11 Python API).

    TensorRT 10: weakly typed by default, BuilderFlag.FP8 / INT8 must be set for Q/DQ of that
    type to be honoured and FP16 / BF16 allow those for the rest. TensorRT 11 removed those
    flags (always strongly typed: the Q/DQ nodes alone decide). `strongly_typed=None` picks
    strongly typed on 11+, weakly typed with the flags on 10. Inputs with dynamic dims (the
    "M" of `export_qdq_onnx`) need an optimization profile: `shapes` is one shape for a
    single-input network (min = opt = max), or {input name: shape or (min, opt, max)}.
    Builder messages (the
    "[DEQUANTIZE] [SCALE] ... ignored" kind) are appended to `log` if given. Returns the
    deserialized ICudaEngine."""
    import tensorrt as trt

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if log is not None:
                log.append(f"[{severity.name if hasattr(severity, 'name') else severity}] {msg}")

    logger = _Logger()
    major = int(trt.__version__.split(".")[0])
    if strongly_typed is None:
        strongly_typed = major >= 11
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as fh:
        if not parser.parse(fh.read()):
            errs = []
            for i in range(parser.num_errors):
                e = parser.get_error(i)
                errs.append(e.desc() if hasattr(e, "desc") else str(e))
            raise RuntimeError("TensorRT could not parse " + str(onnx_path) + ": " + "; ".join(errs))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t for t in inputs if any(d < 0 for d in t.shape)]
    if dynamic:
        if shapes is None:
            raise ValueError(f"inputs {[t.name for t in dynamic]} have dynamic dims: pass shapes=")
        if not isinstance(shapes, dict):
            if len(inputs) != 1:
                raise ValueError("several inputs: pass shapes as {name: shape}")
            shapes = {inputs[0].name: shapes}
        profile = builder.create_optimization_profile()
        for t in dynamic:
            sh = shapes[t.name]
            lo, opt, hi = (sh if isinstance(sh[0], (tuple, list)) else (sh, sh, sh))
            profile.set_shape(t.name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)
    if not strongly_typed:
        for want, flag in ((fp8, "FP8"), (int8, "INT8"), (fp16, "FP16"), (bf16, "BF16")):
            if want:
                f = getattr(trt.BuilderFlag, flag, None)
                if f is None:
                    raise RuntimeError(f"this TensorRT ({trt.__version__}) has no BuilderFlag.{flag}")
                config.set_flag(f)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT build failed:\n" + "\n".join(log or []))
    if log is not None:
        log.append(f"[pi05perf] build took {time.perf_counter() - t0:.1f} s, TensorRT {trt.__version__}, "
                   f"strongly_typed={strongly_typed}")
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize the engine it built")
    _TRT_KEEPALIVE.append((engine, runtime, logger))  # the runtime and logger outlive the engine
    return engine


def _trt_to_torch_dtype(dt) -> torch.dtype:
    import tensorrt as trt

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
             "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8,
             "FP8": FP8}
    for name, tdt in table.items():
        if hasattr(trt.DataType, name) and dt == getattr(trt.DataType, name):
            return tdt
    raise TypeError(f"no torch dtype for TensorRT {dt}")


def time_trt_engine(engine, inputs: torch.Tensor | dict[str, torch.Tensor], warmup: int = 10,
                    iters: int = 50) -> dict:
    """Median / mean milliseconds of `execute_async_v3` with CUDA events, plus the outputs.
    `inputs`: one tensor for a single-input engine or {name: tensor}; copied to CUDA in the
    engine's dtype. Returns {"median_ms", "mean_ms", "times_ms", "outputs": {name: tensor}}."""
    import tensorrt as trt

    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    in_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    if isinstance(inputs, torch.Tensor):
        if len(in_names) != 1:
            raise ValueError(f"engine has inputs {in_names}; pass a dict")
        inputs = {in_names[0]: inputs}
    bufs = {}
    for n in in_names:
        t = inputs[n].to("cuda", _trt_to_torch_dtype(engine.get_tensor_dtype(n))).contiguous()
        context.set_input_shape(n, tuple(t.shape))
        bufs[n] = t
    for n in names:
        if n in bufs:
            continue
        shape = tuple(context.get_tensor_shape(n))
        bufs[n] = torch.empty(shape, dtype=_trt_to_torch_dtype(engine.get_tensor_dtype(n)), device="cuda")
    for n, t in bufs.items():
        context.set_tensor_address(n, t.data_ptr())
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            context.execute_async_v3(stream.cuda_stream)
        times = []
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(stream)
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("execute_async_v3 failed")
            b.record(stream)
            b.synchronize()
            times.append(a.elapsed_time(b))
    times.sort()
    return {"median_ms": times[len(times) // 2], "mean_ms": sum(times) / len(times), "times_ms": times,
            "outputs": {n: bufs[n] for n in names if n not in in_names}}
