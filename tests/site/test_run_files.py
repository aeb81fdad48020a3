"""`make run` keeps what it writes private: var/'s files 0600 and folders 0700, even those of an earlier run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    """var/ after `python -m certportal.run --prepare-only`, the set-up `make run` does before serving."""
    var = tmp_path_factory.mktemp("run") / "var"
    (var / "mail").mkdir(parents=True, mode=0o755)
    # Left by a run before this rule: a world-readable database and an e-mail with a one-time code.
    (var / "certportal.sqlite3").touch(mode=0o644)
    (var / "mail" / "20261204-000000-1.log").write_text("確認コード 123456")
    os.chmod(var / "mail" / "20261204-000000-1.log", 0o644)
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CERTPORTAL_EMAIL_FILE_PATH")}
    env.update(CERTPORTAL_VAR_DIR=str(var), CERTPORTAL_DEBUG="true")
    done = subprocess.run([sys.executable, "-m", "certportal.run", "--prepare-only"], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return var


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_tls_key_and_earlier_mail_are_readable_by_their_owner_alone(var_dir):
    secrets = [var_dir / "certportal.sqlite3", var_dir / "tls" / "server.key",
               var_dir / "mail" / "20261204-000000-1.log"]
    assert {path.name: oct(mode(path)) for path in secrets} == {path.name: "0o600" for path in secrets}


def test_nothing_under_var_but_the_public_static_files_is_open_to_the_group_or_others(var_dir):
    # collectstatic sets Django's FILE_UPLOAD_PERMISSIONS (0644) on the admin's CSS and the enrollment script.
    opened = [str(path.relative_to(var_dir)) for path in [var_dir, *var_dir.rglob("*")]
              if not path.is_symlink() and mode(path) & 0o077 and path.relative_to(var_dir).parts[:1] != ("static",)]
    assert opened == []
    assert (var_dir / "static").is_dir() and (var_dir / "tls" / "ca-chain.pem").exists()  # it did write them
