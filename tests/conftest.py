"""Fixtures every tier shares: settings on an isolated home, and small synthetic data.

Configuration reaches the code under test the way it reaches it in production: as a
settings object built here (the tests' edge) and passed down, never through this
process's environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sluice.contracts.clock import SYSTEM_CLOCK
from sluice.data import SynthCalendar, SynthConfig, synthesize
from sluice.settings import SluiceSettings
from sluice.training import TrainedModel

# The synthetic world of the tests is current: its history ends yesterday and campaigns
# decide today, on whatever date the suite runs. The train and validation cutoffs have
# labels; the audience is scored as of today.
CALENDAR = SynthCalendar.today(SYSTEM_CLOCK)
TRAIN_CUTOFF = CALENDAR.train_cutoff
VALID_CUTOFF = CALENDAR.valid_cutoff
SCORE_CUTOFF = CALENDAR.score_cutoff


@pytest.fixture(scope="session")
def calendar() -> SynthCalendar:
    """The dates of the session's synthetic world (see ``CALENDAR``)."""
    return CALENDAR


def settings_at(home: Path) -> SluiceSettings:
    """Settings with every store under ``home`` (whatever this machine's SLUICE_* say)."""
    return SluiceSettings(
        home=home,
        tracking_uri=None,
        registry_uri=None,
        artifact_location=None,
        database_url=None,
        api_keys_file=None,
        clock_offset=timedelta(0),
    )


@pytest.fixture
def sluice_home(tmp_path: Path) -> Path:
    """A fresh, empty Sluice home for one test (see ``fresh_settings``)."""
    return tmp_path / "sluice-home"


@pytest.fixture
def fresh_settings(sluice_home: Path) -> SluiceSettings:
    """Settings on a fresh, empty home for one test."""
    return settings_at(sluice_home)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12,000-customer synthetic base (generated once per session)."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(
        SynthConfig(customers=12_000, seed=11, chunk_size=5_000, end=CALENDAR.history_end), out
    )
    return out


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Sluice home of the whole run. Session-scoped fixtures (the registry with a
    trained model) live here; a test that needs an empty home takes ``fresh_settings``."""
    return tmp_path_factory.mktemp("session-home")


@pytest.fixture(scope="session")
def prepared_llm(session_home: Path) -> Path:
    """The packaged SmolLM2, converted once per run (``sluice llm prepare``): the LLM
    deployment of the integration tier and the demo of the e2e tier both use it."""
    from sluice.generation.model_prep import model_dir, prepare

    return Path(prepare(model_dir(session_home)).path)


@pytest.fixture(scope="session")
def settings(session_home: Path) -> SluiceSettings:
    """The session's settings: every store under ``session_home``."""
    return settings_at(session_home)


@pytest.fixture(scope="session")
def features_dir(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Feature tables at the train, validation and scoring cutoffs of ``synth_dir``."""
    import pyarrow.parquet as pq

    from sluice.data.population import US_PER_DAY, day_us
    from sluice.features import build_features, load_synthetic

    out = tmp_path_factory.mktemp("features")
    for name, cutoff in (
        ("train", TRAIN_CUTOFF),
        ("valid", VALID_CUTOFF),
        ("audience", SCORE_CUTOFF),
    ):
        c = day_us(cutoff)
        built = build_features(load_synthetic(synth_dir, c, c + 90 * US_PER_DAY), cutoff)
        pq.write_table(built.table, out / f"{name}.parquet", row_group_size=4_096)
    return out


@pytest.fixture(scope="session")
def trained_model(features_dir: Path) -> TrainedModel:
    """A small propensity model (trained once per session, not registered)."""
    from sluice.training import TrainConfig, train

    return train(
        features_dir / "train.parquet",
        features_dir / "valid.parquet",
        TrainConfig(num_boost_round=80),
    )


POSTGRES_ADMIN = os.environ.get(
    "SLUICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session (skipped where no server is reachable,
    except under ``CI=true``, where a missing server fails the tests that need it)."""
    import secrets

    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":  # CI has the server: its absence is a failure
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_ADMIN} under CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: {exc}")
    name = f"sluice_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    from sluice.store import dispose_all

    dispose_all()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def empty_database(url: str) -> str:
    """Empty every Sluice table of the PostgreSQL database at ``url``; returns ``url``."""
    from sqlalchemy import text

    from sluice.store import connect
    from sluice.store.schema import metadata

    with connect(url).begin() as conn:
        conn.execute(
            text(
                "TRUNCATE "
                + ", ".join(t.name for t in metadata.sorted_tables)
                + " RESTART IDENTITY CASCADE"
            )
        )
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty Sluice database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sluice.db'}"
    return empty_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db_settings(fresh_settings: SluiceSettings, database_url: str) -> SluiceSettings:
    """Settings on a fresh home whose database is the test's: SQLite, then PostgreSQL."""
    return fresh_settings.model_copy(update={"database_url": database_url})


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database(request: pytest.FixtureRequest) -> Callable[[Path], str]:
    """For property tests, whose examples each need an empty database: a function that
    empties one (a new SQLite file in the folder it is given, or the session's
    PostgreSQL database) and returns its URL."""
    if request.param == "sqlite":
        return lambda folder: f"sqlite:///{folder / 'sluice.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return lambda _folder: empty_database(url)
