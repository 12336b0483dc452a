"""``carebot model export``: the configured sentence-transformers model as an ONNX graph.

The graph holds the transformer, the pooling (mean or CLS) and the L2 normalisation, so the
ONNX encoder only tokenises and runs it. Before anything is written, the export is checked on a
fixed set of sentences: its embeddings must match sentence-transformers' within ``1e-5``, else
it is refused and the previous export (if any) stays. sentence-transformers stays the source of
truth: any BERT-style model made of a Transformer, a Pooling (mean or CLS) and optionally a
Normalize module exports, a folder made by ``carebot intents tune`` included.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from carebot.exceptions import ModelError
from carebot.nlu.encoder import SentenceTransformerEncoder, fingerprint, resolve_model
from carebot.nlu.onnx_encoder import GRAPH, OUTPUT, Manifest, OnnxEncoder
from carebot.nlu.use_encoder import is_use

log = logging.getLogger(__name__)
TOLERANCE = 1e-5
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Short and long, cased and not, punctuation, digits, accents, emoji, a text over the length
# limit: what customers write.
VERIFY_SENTENCES = (
    "where is my order",
    "Where is my order #12345? It was due on Monday!!",
    "I want to return the blue jacket I bought last week, how does that work?",
    "hi",
    "Can I talk to a real person please",
    "MY PARCEL NEVER ARRIVED AND NOBODY ANSWERS",
    "Ich möchte meine Bestellung stornieren, geht das noch?",
    "Le colis est arrivé abîmé 😡",
    "   leading and trailing spaces   ",
    "refund " * 200,
    "password reset link not working on iOS 17.2",
    "1234 5678",
)


def export_model(
    model: str,
    out: Path,
    *,
    base_dir: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
    tolerance: float = TOLERANCE,
) -> Manifest:
    """Export ``model`` into ``out`` (replacing an earlier export only once the new one is
    verified). Raises :class:`ModelError` with the reason when it cannot."""
    if is_use(model):
        raise ModelError(
            f"{model!r} runs from its package on numpy: there is nothing to export, it serves "
            "as it is."
        )
    import torch

    say(f"Loading {model} with sentence-transformers...")
    encoder = SentenceTransformerEncoder(model, base_dir=base_dir)
    st = encoder.model
    pooling = _pooling(st, model)
    inputs = tuple(n for n in st.tokenizer.model_input_names if n in INPUTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        folder = Path(tmp)
        say(f"Exporting to ONNX (opset {OPSET}, {pooling} pooling)...")
        graph = _graph(st[0].auto_model, pooling, inputs).eval()
        sample = st.tokenizer(["a sample sentence"], return_tensors="pt")
        axes = {name: {0: "batch", 1: "tokens"} for name in inputs} | {OUTPUT: {0: "batch"}}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
            torch.onnx.export(
                graph,
                tuple(sample[name] for name in inputs),
                str(folder / GRAPH),
                input_names=list(inputs),
                output_names=[OUTPUT],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        st.tokenizer.save_pretrained(str(folder))
        manifest = Manifest(
            source=model,
            source_id=fingerprint(resolve_model(model, base_dir)),
            dimensions=int(st.get_embedding_dimension()),
            pooling=pooling,
            normalized=True,
            max_seq_length=int(st.max_seq_length),
            inputs=inputs,
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            sha256=_sha256(folder / GRAPH),
            max_difference=0.0,
            opset=OPSET,
        )
        manifest.write(folder)
        say(f"Verifying on {len(VERIFY_SENTENCES)} sentences against sentence-transformers...")
        difference = verify(folder, encoder, tolerance=tolerance)
        manifest = Manifest(**{**manifest.__dict__, "max_difference": difference})
        manifest.write(folder)
        _replace(out, folder)
    say(f"Exported {model} to {out} (largest difference {difference:.1e}).")
    return manifest


def verify(folder: Path, reference: Any, *, tolerance: float = TOLERANCE) -> float:
    """The largest difference between the export's embeddings and ``reference``'s on the
    verification sentences; ModelError when it is above ``tolerance``."""
    expected = reference.encode(list(VERIFY_SENTENCES))
    got = OnnxEncoder(folder, threads=1).encode(list(VERIFY_SENTENCES))
    difference = float(np.max(np.abs(expected - got))) if got.shape == expected.shape else np.inf
    if not difference <= tolerance:
        raise ModelError(
            f"The ONNX export differs from sentence-transformers by {difference:.2e} (the limit "
            f"is {tolerance:.0e}) on the verification sentences: it was not written. The model "
            "may use a layer the exporter does not translate faithfully."
        )
    return difference


def _pooling(st: Any, model: str) -> str:
    """'mean' or 'cls'; ModelError for a model made of other modules."""
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ModelError(
            f"{model} is made of {', '.join(kinds)}; only Transformer + Pooling (+ Normalize) "
            'models can be exported. Keep [matcher] backend = "torch" for this one.'
        )
    mode = getattr(modules[1], "pooling_mode", None)
    if isinstance(mode, list | tuple) and len(mode) == 1:
        mode = mode[0]
    if mode not in ("mean", "cls"):
        raise ModelError(
            f"{model} pools with {mode!r}; only mean and CLS pooling can be exported. Keep "
            '[matcher] backend = "torch" for this one.'
        )
    return str(mode)


def _graph_class() -> type:
    import torch

    class Graph(torch.nn.Module):
        """The transformer, the pooling and the normalisation, as one module to export."""

        def __init__(self, model: Any, pooling: str, inputs: tuple[str, ...]) -> None:
            super().__init__()
            self.model, self.pooling, self.inputs = model, pooling, inputs

        def forward(self, *tensors: Any) -> Any:
            given = dict(zip(self.inputs, tensors, strict=True))
            hidden = self.model(**given, return_dict=False)[0]
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:  # as sentence-transformers' Pooling computes the mean
                mask = given["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Graph


def _graph(model: Any, pooling: str, inputs: tuple[str, ...]) -> Any:
    return _graph_class()(model, pooling, inputs)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _replace(out: Path, folder: Path) -> None:
    """Put the verified export in place of ``out`` (an earlier export is removed first)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(folder, out)
    log.info("Wrote the ONNX export to %s", out)


def export_in_child(model: str, out: Path, *, base_dir: Path | None) -> None:
    """Export in a child process, so the calling process (a server about to serve with the
    ONNX encoder) never loads torch. The child's progress is kept quiet (the caller has said
    what is going on in one line); when it fails, its output is in the error."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "carebot.nlu.model_export", model, str(out)]
    if base_dir is not None:
        command += ["--base-dir", str(base_dir)]
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise ModelError(
            f"Exporting {model} to ONNX failed; nothing was written. The export said:\n{said}"
        )


def _main() -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Export a sentence model to ONNX (verified).")
    parser.add_argument("model")
    parser.add_argument("out", type=Path)
    parser.add_argument("--base-dir", type=Path)
    args = parser.parse_args()
    try:
        export_model(args.model, args.out, base_dir=args.base_dir, say=print)
    except ModelError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
