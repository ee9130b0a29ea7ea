"""The Ray Data batch-scoring job end to end on the shared local cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sluice.errors import ConflictError
from sluice.registry import Registry, VersionInfo
from sluice.scoring import ScoreRequest, run_scoring
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel


def _audience(features_dir: Path, target: Path) -> int:
    """The scoring-cutoff features plus one malformed upload and one file that is not Parquet."""
    target.mkdir()
    good = pq.read_table(features_dir / "audience.parquet")
    pq.write_table(good, target / "main.parquet", row_group_size=2_000)
    bad = good.slice(0, 6)
    bad = bad.set_column(
        bad.schema.get_field_index("recency_days"),
        "recency_days",
        pa.array(["1.5", "soon", "2", "3", "4", "5"]),
    )
    bad = bad.set_column(
        bad.schema.get_field_index("frequency_30d"), "frequency_30d", pa.array([0, 1, -4, 0, 0, 0])
    )
    bad = bad.set_column(
        bad.schema.get_field_index("country"),
        "country",
        pa.array(["DE", "DE", "DE", "XX", "DE", "DE"]),
    )
    bad = bad.set_column(0, "customer_id", pa.array(["u-0", "u-1", "u-2", "u-3", None, "u-5"]))
    pq.write_table(bad, target / "upload-bad-types.parquet")
    no_tenure = good.slice(6, 4).drop_columns(["tenure_days"])
    pq.write_table(no_tenure, target / "upload-no-tenure.parquet")
    (target / "notes.parquet").write_text("this is not parquet")
    return good.num_rows + bad.num_rows + no_tenure.num_rows


def _read(path: Path) -> pa.Table:
    return pq.read_table(path) if path.exists() else pa.table({})


def test_scores_equal_booster_predict_and_bad_rows_are_quarantined_with_reasons(
    settings: SluiceSettings,
    champion: VersionInfo,
    trained_model: TrainedModel,
    features_dir: Path,
    tmp_path: Path,
) -> None:
    audience = tmp_path / "audience"
    total = _audience(features_dir, audience)
    report = run_scoring(
        ScoreRequest(
            audience=str(audience),
            model="sluice-propensity@champion",
            out=tmp_path / "out",
            progress=False,
        ),
        Registry(settings),
    )

    assert report.model_version == champion.version and report.predictor == "compiled"
    assert report.scored + report.quarantined == total
    assert list(report.unreadable_files) == [str(audience / "notes.parquet")]

    scores = pq.read_table(tmp_path / "out" / "scores")
    assert set(pc.unique(scores.column("model_version")).to_pylist()) == {champion.version}
    assert pc.count_distinct(scores.column("customer_id")).as_py() == scores.num_rows
    # Every score equals LightGBM's own prediction for that customer's row, exactly.
    good = pq.read_table(features_dir / "audience.parquet")
    checked = trained_model.contract.validate_batch(good)
    expected = dict(
        zip(checked.ids.to_pylist(), trained_model.booster.predict(checked.matrix), strict=True)
    )
    got = dict(
        zip(
            scores.column("customer_id").to_pylist(),
            scores.column("score").to_pylist(),
            strict=True,
        )
    )
    clean = {k: v for k, v in got.items() if not k.startswith("u-")}
    assert clean.keys() == expected.keys()
    assert all(clean[k] == expected[k] for k in expected)

    q = pq.read_table(tmp_path / "out" / "quarantine")
    reasons = {r["customer_id"]: r["reason"] for r in q.to_pylist()}
    assert reasons["u-1"] == "recency_days: 'soon' is not a number"
    assert reasons["u-2"] == "frequency_30d: value -4 below minimum 0"
    assert reasons["u-3"] == "country: 'XX' is not an allowed category"
    assert reasons[None] == "customer_id: missing"
    missing_tenure = [r for r in q.to_pylist() if r["reason"] == "tenure_days: missing column"]
    assert len(missing_tenure) == 4
    assert (
        json.loads(missing_tenure[0]["record"])["customer_id"] == missing_tenure[0]["customer_id"]
    )
    assert report.reasons == {
        "recency_days": 1,
        "frequency_30d": 1,
        "country": 1,
        "customer_id": 1,
        "tenure_days": 4,
    }
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scored"] == report.scored and summary["quarantined"] == report.quarantined == 8


def test_alias_is_resolved_once_and_recorded(
    settings: SluiceSettings,
    champion: VersionInfo,
    trained_model: TrainedModel,
    features_dir: Path,
    tmp_path: Path,
) -> None:
    registry = Registry(settings)
    newer = registry.register(trained_model)
    registry.promote(newer.version, by="tests")
    try:
        report = run_scoring(
            ScoreRequest(
                audience=str(features_dir / "audience.parquet"),
                model="sluice-propensity@champion",
                out=tmp_path / "o",
                progress=False,
                predictor="booster",
            ),
            registry,
        )
        assert report.model_version == newer.version and report.predictor == "booster"
        versions = pc.unique(
            pq.read_table(tmp_path / "o" / "scores").column("model_version")
        ).to_pylist()
        assert versions == [newer.version]
        pinned = run_scoring(
            ScoreRequest(
                audience=str(features_dir / "audience.parquet"),
                model=f"sluice-propensity/{champion.version}",
                out=tmp_path / "p",
                progress=False,
            ),
            registry,
        )
        assert pinned.model_version == champion.version
    finally:
        registry.promote(champion.version, by="tests")


def test_existing_output_is_not_overwritten_by_accident(
    settings: SluiceSettings, champion: VersionInfo, features_dir: Path, tmp_path: Path
) -> None:
    request = ScoreRequest(
        audience=str(features_dir / "audience.parquet"),
        model="sluice-propensity@champion",
        out=tmp_path / "o",
        progress=False,
    )
    registry = Registry(settings)
    first = run_scoring(request, registry)
    with pytest.raises(ConflictError, match="--overwrite") as info:
        run_scoring(request, registry)
    assert info.value.field == "out"
    again = run_scoring(ScoreRequest(**{**request.__dict__, "overwrite": True}), registry)
    assert again.scored == first.scored == pq.read_table(tmp_path / "o" / "scores").num_rows
    assert np.isfinite(pq.read_table(tmp_path / "o" / "scores").column("score").to_numpy()).all()


def test_job_entrypoint_prints_the_report(
    settings: SluiceSettings,
    champion: VersionInfo,
    features_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "score_audience", Path(__file__).parents[2] / "jobs" / "score_audience.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(
        ["--audience", str(features_dir / "audience.parquet"), "--out", str(tmp_path / "j")],
        settings,
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["model_version"] == champion.version and report["quarantined"] == 0
