"""pi05perf: the library behind the executable report on Pi0.5's prefill latency.

config   - pi0.5's architecture (openpi) and hardware specs
flops    - analytic FLOPs and bytes per op, per layer, per stage
model    - the pi0.5-shaped PyTorch model (SigLIP, Gemma-2B prefix LM, Gemma-300M expert)
precision - FP8 / INT8 / INT4 / NVFP4 paths beside the model (one module per format)
timing   - medians with spread, device events, CUDA graphs
ceilings - measured bandwidth and matmul rate of the running device
results  - the results store with provenance; reference - the quoted figures
"""
__version__ = "0.1.0"
