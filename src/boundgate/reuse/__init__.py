"""Answer reuse: policy, scope keys, exact and semantic lookup, verifier, stored answers."""

# onnxruntime must be loaded before usearch: importing onnxruntime after usearch's native
# module (numkong) is loaded segfaults (onnxruntime 1.31, usearch 2.26, x86-64 Linux).
import onnxruntime as _onnxruntime  # noqa: F401
