"""API keys in a Kubernetes Secret volume: the kubelet replaces the file behind a symlink
(``api-keys.json -> ..data/api-keys.json``, ``..data -> ..<timestamp>``) on every update.
The decision app keeps that path as it is (absolute, links not resolved) and the key store
re-reads the file when it changed, so a revoked key stops working without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sluice.auth import KeyStore, Scope
from sluice.errors import AuthError, ForbiddenError
from sluice.serve.app import DecisionAppArgs, _stores
from sluice.settings import SluiceSettings


def _publish(volume: Path, source: Path, version: str) -> None:
    """What the kubelet does: a new timestamped directory, then an atomic swap of ..data."""
    target = volume / f"..{version}"
    target.mkdir()
    shutil.copy(source, target / "api-keys.json")
    tmp = volume / "..data_tmp"
    tmp.symlink_to(target.name)
    tmp.replace(volume / "..data")
    link = volume / "api-keys.json"
    if not link.is_symlink():
        link.symlink_to("..data/api-keys.json")


def test_a_key_revoked_in_the_secret_stops_working_without_a_restart(
    fresh_settings: SluiceSettings, tmp_path: Path
) -> None:
    source = tmp_path / "api-keys.json"  # the operator's copy, edited with `sluice keys`
    editor = KeyStore(source)
    web, _ = editor.create("web", (Scope.SCORE,))
    other, _ = editor.create("batch", (Scope.SCORE,))
    volume = tmp_path / "etc-sluice-keys"
    volume.mkdir()
    _publish(volume, source, "2026_12_06_10_00_00.1")

    args = DecisionAppArgs(
        models=["sluice-propensity@champion"], api_keys_file=str(volume / "api-keys.json")
    )
    settings = fresh_settings.model_copy(update={"api_keys_file": Path(args.api_keys_file or "")})
    path = Path(_stores(args, settings).api_keys_file)
    assert path == volume / "api-keys.json"  # the link, not where it points today

    served = KeyStore(path)
    assert served.authorize(f"Bearer {web}", Scope.SCORE).name == "web"
    editor.revoke("web")
    _publish(volume, source, "2026_12_06_10_05_00.2")
    with pytest.raises(AuthError) as refused:
        served.authorize(f"Bearer {web}", Scope.SCORE)
    assert not isinstance(refused.value, ForbiddenError)  # unknown now: 401, not 403
    assert served.authorize(f"Bearer {other}", Scope.SCORE).name == "batch"
