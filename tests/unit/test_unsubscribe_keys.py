"""The unsubscribe keyring: strength, atomic creation by racing processes, rotation that
keeps issued tokens valid, and forged or old-format tokens refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hygiene_support import HEX_KEY, NO_ENV, OTHER_KEY, U, mode

from sluice.channels.unsubscribe import (
    ENV,
    ENV_PREVIOUS,
    Keyring,
    Unsubscribe,
    add_key,
    keyring_file,
    make_token,
    read_token,
    secret,
)
from sluice.errors import ConfigError, InputError


def test_an_empty_key_file_is_refused_and_never_replaced(tmp_path: Path) -> None:
    path = keyring_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("")
    with pytest.raises(ConfigError) as err:
        secret(tmp_path, NO_ENV)
    assert str(path) in err.value.message and "empty" in err.value.message
    assert path.read_text() == ""  # not regenerated: links in flight stay verifiable later
    path.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError, match="empty"):
        secret(tmp_path, NO_ENV)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("ab12" * 8, "32 hex digits"),  # 128 bits
        ("A" * 20 + "bcdefghijklmnopqrstuv", "41 base64 characters"),
        ("a1" * 40, "too few characters"),  # long, but not random
        ("correct horse battery staple " * 3, "hex or base64"),
    ],
)
def test_a_weak_key_is_refused_in_the_file_and_in_the_environment(
    tmp_path: Path, key: str, why: str
) -> None:
    path = keyring_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(f"k1 {key}\n" if " " not in key else f"k1 {key.split()[0]}\n")
    if " " not in key:
        with pytest.raises(ConfigError, match=why) as err:
            secret(tmp_path, NO_ENV)
        assert str(path) in err.value.message and key not in err.value.message
    with pytest.raises(ConfigError, match=why) as err:
        secret(tmp_path, {ENV: key})
    assert ENV in err.value.message and key not in err.value.message


def test_the_strength_rule_accepts_256_bits_of_hex_or_base64() -> None:
    assert Keyring.of(HEX_KEY).keys  # 64 hex digits
    assert Keyring.of("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo").keys  # 43 base64
    with pytest.raises(ConfigError, match="63 hex digits"):
        Keyring.of(HEX_KEY[:-1])
    assert HEX_KEY not in repr(Keyring.of(HEX_KEY))  # never in a log or a traceback


def test_an_unreadable_or_malformed_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = keyring_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(f"{HEX_KEY}\n")  # no key id
    with pytest.raises(ConfigError, match="expected '<key id> <key>'") as err:
        secret(tmp_path, NO_ENV)
    assert str(path) in err.value.message and HEX_KEY not in err.value.message
    path.write_text(f"k1 {HEX_KEY}\nk1 {OTHER_KEY}\n")
    with pytest.raises(ConfigError, match="key id k1 repeats"):
        secret(tmp_path, NO_ENV)
    if os.geteuid() != 0:  # root reads anything
        path.write_text(f"k1 {HEX_KEY}\n")
        path.chmod(0)
        with pytest.raises(ConfigError, match="cannot be read"):
            secret(tmp_path, NO_ENV)


CHILD = """
import json, sys, time
from pathlib import Path
from sluice.channels.unsubscribe import Unsubscribe, make_token, secret
home, n = Path(sys.argv[1]), sys.argv[2]
(home.parent / f"ready-{n}").touch()
while not (home.parent / "go").exists():
    time.sleep(0.001)
ring = secret(home, {})
token = make_token(Unsubscribe("c1", "b", "email", "r"), ring)
print(json.dumps({"kid": ring.signing, "token": token}))
"""


def test_processes_creating_the_keyring_at_once_end_with_one_key_all_use(tmp_path: Path) -> None:
    home, n = tmp_path / "home", 6
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all at once
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    ring = secret(home, NO_ENV)
    assert len(ring.keys) == 1
    assert {r["kid"] for r in results} == {ring.signing}
    for r in results:  # every token any of them made verifies with the one key
        assert read_token(r["token"], ring) == Unsubscribe("c1", "b", "email", "r")
    secrets_dir = keyring_file(home).parent
    assert mode(secrets_dir) == 0o700 and mode(keyring_file(home)) == 0o600
    assert not list(secrets_dir.glob("*.tmp"))


def test_after_rotation_old_tokens_verify_and_new_ones_use_the_new_key(tmp_path: Path) -> None:
    first = secret(tmp_path, NO_ENV)
    old = make_token(U, first)
    new_kid = add_key(tmp_path, NO_ENV)
    ring = secret(tmp_path, NO_ENV)
    assert new_kid != first.signing and ring.signing == new_kid and len(ring.keys) == 2
    assert read_token(old, ring) == U
    new = make_token(U, ring)
    assert new.startswith(f"{new_kid}.") and read_token(new, ring) == U
    with pytest.raises(InputError):  # the old key alone does not know the new one
        read_token(new, first)
    # In the environment: the new key signs, the previous one still verifies.
    rotated = secret(tmp_path, {ENV: OTHER_KEY, ENV_PREVIOUS: HEX_KEY})
    assert read_token(make_token(U, Keyring.of(HEX_KEY)), rotated) == U
    with pytest.raises(ConfigError, match=ENV_PREVIOUS):
        secret(tmp_path, {ENV_PREVIOUS: HEX_KEY})
    with pytest.raises(ConfigError, match="set but empty"):
        secret(tmp_path, {ENV: ""})
    with pytest.raises(ConfigError, match=ENV):  # rotation goes through the variables then
        add_key(tmp_path, {ENV: OTHER_KEY})


def test_forged_and_old_format_tokens_are_refused_naming_the_token() -> None:
    ring = Keyring.of(HEX_KEY)
    kid, body, mac = make_token(U, ring).split(".")
    forger = Keyring({"evil0001": OTHER_KEY.encode()}, "evil0001")
    forged = make_token(Unsubscribe("c2", "outdoors", "email", "run-1"), forger)
    for token in (forged, f"evil0001.{body}.{mac}", f"{kid}.{body}.{mac[:-2]}xx", "a.b.c.d"):
        with pytest.raises(InputError) as err:
            read_token(token, ring)
        assert err.value.field == "token"
    with pytest.raises(InputError, match="old unsubscribe token") as err:
        read_token(f"{body}.{mac}", ring)  # the format before key ids
    assert err.value.field == "token"
