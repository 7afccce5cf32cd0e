"""Settings: typed values from the environment, a one-line error naming a bad variable."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import VARIABLES, Settings, SettingsError

SECRET = "s" * 40
TICA = str(Path(sys.executable).parent / "tica")

INVALID = [
    ("DATABASE_URL", "mysql://db/tica"),
    ("DATABASE_URL", "postgresql://[::1/tica"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("SMTP_URL", "mail.example.org:25"),
    ("PORT", "eighty"),
    ("PORT", "0"),
    ("PORT", "65536"),
    ("PORT", "80.5"),
    ("TICA_BASE_URL", "forum.example.org"),
    ("TICA_BASE_URL", "ftp://forum.example.org"),
    ("TICA_SECRET_KEY", "too-short"),
    ("TICA_REDIS_PREFIX", "tica prod:"),
    ("TICA_LOG_LEVEL", "LOUD"),
    ("TICA_STREAM_MAXLEN", "-5"),
    ("TICA_STREAM_MAXLEN", "lots"),
    ("TICA_MAX_BODY_BYTES", "0"),
    ("TICA_MAX_BODY_BYTES", "1e6"),
    ("TICA_MAX_UPLOAD_BYTES", "25MB"),
    ("TICA_STORAGE_URL", "ftp://files.example.org/uploads"),
    ("TICA_STORAGE_URL", "s3://storage.example.org/uploads"),
    ("TICA_FLAG_HIDE_SCORE", "0"),
    ("TICA_NEW_MEMBER_REVIEW_POSTS", "-1"),
    ("TICA_NEW_MEMBER_DAYS", "a week"),
    ("TICA_SAFEGUARDING_HOLD", "maybe"),
    ("TICA_POSTS_PER_MINUTE", "0"),
    ("TICA_NEW_MEMBER_POSTS_PER_MINUTE", "1.5"),
    ("TICA_TOPICS_PER_DAY", "-3"),
    ("TICA_NEW_MEMBER_TOPICS_PER_DAY", "five"),
    ("TICA_FLAGS_PER_DAY", "0"),
    ("TICA_NEW_MEMBER_FLAGS_PER_DAY", "many"),
]
# Any path (problems show when the folder is used), and words people choose (bounded in length only).
ANY_VALUE_IS_VALID = {"DATA_DIR", "TICA_SITE_NAME", "TICA_WELCOME_TEXT", "TICA_SIGNUP_QUESTION"}


@pytest.mark.parametrize(("name", "value"), INVALID, ids=[f"{n}={v}" for n, v in INVALID])
def test_invalid_variable_gives_one_line_error_naming_it(name, value):
    """Each invalid variable raises SettingsError with one line that names it and does not echo the value."""
    environ = {"TICA_SECRET_KEY": SECRET, name: value}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    message = str(caught.value)
    assert message.startswith(f"{name} is invalid: ")
    assert "\n" not in message
    assert len(value) < 4 or value not in message  # values may be secrets


BAD_VALUES = ("lots", "-5", "a b", "perhaps")  # one of them is wrong for any variable but a path


def test_every_variable_rejects_a_bad_value_in_one_line():
    """Every variable but DATA_DIR, also ones added later, rejects a bad value with one line naming it."""
    for var in VARIABLES:
        if var.name in ANY_VALUE_IS_VALID:
            continue
        messages = []
        for value in BAD_VALUES:
            try:
                Settings.from_env({"TICA_SECRET_KEY": SECRET, var.name: value})
            except SettingsError as exc:
                messages.append(str(exc))
        assert messages, f"{var.name} accepts {BAD_VALUES}"
        for message in messages:
            assert message.startswith(f"{var.name} is invalid: ") and "\n" not in message, message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TICA_SITE_NAME", "x" * 61),
        ("TICA_SITE_NAME", "   "),
        ("TICA_WELCOME_TEXT", "x" * 5001),
        ("TICA_SIGNUP_QUESTION", "  "),
    ],
)
def test_words_people_choose_are_bounded(name, value):
    """The site name, welcome text and sign-up question are refused when too long (or empty where needed)."""
    with pytest.raises(SettingsError, match=f"^{name} is invalid: must be"):
        Settings.from_env({"TICA_SECRET_KEY": SECRET, name: value})


def test_every_variable_has_a_settings_field():
    """Each documented variable fills a Settings field of the same default."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for var in VARIABLES:
        assert var.attr in fields, var.name
        assert fields[var.attr].default == var.default, var.name
        assert var.help


def test_unset_and_empty_variables_take_defaults():
    """An empty environment, or empty values, give the defaults: embedded servers, port 8000."""
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({var.name: "" for var in VARIABLES}) == Settings()


def test_valid_values_are_parsed_and_normalised():
    """Valid values become typed settings: a port number, an upper-case level, a base URL without a trailing slash."""
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://tica@db/tica",
            "REDIS_URL": "unix:///run/redis.sock",
            "PORT": "8080",
            "TICA_BASE_URL": "https://forum.example.org/",
            "TICA_SECRET_KEY": SECRET,
            "DATA_DIR": "/srv/tica",
            "TICA_LOG_LEVEL": "debug",
            "TICA_STREAM_MAXLEN": "5000",
            "SMTP_URL": "smtp://mail:587?starttls=1",
        }
    )
    assert settings.port == 8080
    assert settings.base_url == settings.public_url == "https://forum.example.org"
    assert settings.log_level == "DEBUG"
    assert settings.stream_maxlen == 5000
    assert settings.data_dir == Path("/srv/tica")
    assert Settings(port=9000).public_url == "http://127.0.0.1:9000"


def test_database_url_requires_a_secret_key():
    """With DATABASE_URL set, a missing TICA_SECRET_KEY is an error naming it."""
    with pytest.raises(SettingsError, match=r"^TICA_SECRET_KEY is missing"):
        Settings.from_env({"DATABASE_URL": "postgresql://tica@db/tica"})


def test_local_secret_is_generated_once_and_kept_private(tmp_path):
    """Without a configured key, one is generated under DATA_DIR (mode 600) and reused."""
    settings = Settings(data_dir=tmp_path / "data")
    first = settings.with_local_secret()
    assert first.secret_key and len(first.secret_key) >= 32
    assert settings.with_local_secret().secret_key == first.secret_key
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Settings(secret_key=SECRET).with_local_secret().secret_key == SECRET


@pytest.mark.parametrize("command", ["migrate", "run"])
def test_tica_with_invalid_port_exits_with_one_line(tmp_path, command):
    """`tica` with an invalid PORT exits non-zero with one line on stderr naming PORT, and no traceback."""
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "TICA_SECRET_KEY"}}
    environ.update(PORT="eighty", DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([TICA, command], env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PORT" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started
