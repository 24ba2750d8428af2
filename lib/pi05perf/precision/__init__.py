"""Quantized linear layers beside the model, one module per format.

base (QuantLinear, its native / simulate dispatch, device queries), fp8, int8, int4, nvfp4
(each: quantize / dequantize, its `*Linear`, `weight_bytes`), surgery (quantize_model,
coverage sets, torchao), faults (misread weights and their signatures), onnx_qdq (explicit
Q/DQ graphs), tensorrt (engine build and timing), w4a16_triton (a prefill-class INT4 kernel).
"""
from .base import (FP8, FP8_MAX, INT8_MAX, NOSCALE, Backend, BF16Linear, QuantLinear, accuracy,
                   cuda_capability, dequantize, fp8_supported, int4_supported, int_mm_supported)
from .faults import (apply_fault, e2m1_as_int4, fault_signatures, fault_weights, read_other_major, signature,
                     swap_nibbles, toy_residual_stack)
from .fp8 import FP8Linear, calibrate_static, quantize_fp8
from .int4 import Int4WOLinear, int4_dequantize, int4_group_quantize, pack_uint4, unpack_uint4
from .int8 import Int8Linear, quantize_int8
from .nvfp4 import (E2M1_MAX, E2M1_VALUES, NVFP4Linear, dequantize_nvfp4, e2m1_decode, e2m1_encode,
                    fake_quant_nvfp4, quantize_nvfp4)
from .onnx_qdq import (export_geglu_qdq_onnx, export_qdq_onnx, onnx_scale_dtypes, run_onnxruntime,
                       simulate_geglu_qdq, simulate_qdq)
from .surgery import (ALL_SCHEMES, ATTN_ONLY, FULL_COVERAGE, MLP_ONLY, SCALE_IGNORED_SCHEMES, SCHEMES, QuantScheme,
                      all_linears, apply_torchao, model_weight_bytes, quantize_linear, quantize_model,
                      quantized_names, torchao_version)
from .tensorrt import build_trt_engine, tensorrt_available, tensorrt_version, time_trt_engine

__all__ = [
    "FP8", "FP8_MAX", "INT8_MAX", "NOSCALE", "Backend", "BF16Linear", "QuantLinear", "accuracy", "cuda_capability",
    "dequantize", "fp8_supported", "int4_supported", "int_mm_supported", "apply_fault", "e2m1_as_int4",
    "fault_signatures", "fault_weights", "read_other_major", "signature", "swap_nibbles", "toy_residual_stack",
    "FP8Linear", "calibrate_static", "quantize_fp8", "Int4WOLinear", "int4_dequantize", "int4_group_quantize", "pack_uint4",
    "unpack_uint4", "Int8Linear", "quantize_int8", "E2M1_MAX", "E2M1_VALUES", "NVFP4Linear", "dequantize_nvfp4",
    "e2m1_decode", "e2m1_encode", "fake_quant_nvfp4", "quantize_nvfp4", "export_geglu_qdq_onnx", "export_qdq_onnx",
    "onnx_scale_dtypes", "run_onnxruntime", "simulate_geglu_qdq", "simulate_qdq", "ALL_SCHEMES", "ATTN_ONLY",
    "FULL_COVERAGE", "MLP_ONLY", "SCALE_IGNORED_SCHEMES", "SCHEMES", "QuantScheme", "all_linears", "apply_torchao",
    "model_weight_bytes", "quantize_linear", "quantize_model", "quantized_names", "torchao_version",
    "build_trt_engine", "tensorrt_available", "tensorrt_version", "time_trt_engine",
]
