"""The state folder of the local stack: private folders, the recorded location, secrets.

Everything ``gw-ops up`` writes lives in ``settings.state_path`` (see
:mod:`gw_ops.ops.stack`); this module makes its folders private (0700), records its
absolute path for commands run from other folders (:func:`gw_ops.config.state_record_path`)
and keeps the generated secrets in ``secrets.json`` (0600).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from gw_ops.config import Settings, state_record_path


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def record_state_dir(settings: Settings) -> Path:
    """Record the absolute state folder for commands run from other folders; returns the record."""
    record = state_record_path()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{settings.state_path}\n")
    return record


def run_dir(settings: Settings) -> Path:
    return settings.state_path / "run"


def log_dir(settings: Settings) -> Path:
    return settings.state_path / "logs"


def load_secrets(settings: Settings) -> dict[str, str]:
    """The stack's generated secrets, created once and kept in ``secrets.json`` (mode 0600).

    ``airflow_admin_password`` (the web UI login), ``airflow_jwt_secret`` (signs task
    tokens), ``airflow_fernet_key`` (encrypts connections and trigger arguments),
    ``postgres_password`` (the embedded PostgreSQL's superuser, :mod:`gw_ops.ops.stack_postgres`).  A
    secret missing from an older file is added; none is ever replaced.
    """
    from cryptography.fernet import Fernet

    path = settings.state_path / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    makers = {"airflow_admin_password": lambda: secrets.token_urlsafe(12),
              "airflow_jwt_secret": lambda: secrets.token_urlsafe(32),
              "airflow_fernet_key": lambda: Fernet.generate_key().decode(),
              "postgres_password": lambda: secrets.token_urlsafe(24)}
    missing = {name: make() for name, make in makers.items() if name not in values}
    if missing:
        values.update(missing)
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
    return values


def ensure_airflow_password(settings: Settings) -> tuple[str, bool]:
    """Write the simple auth manager's password file; return (password, created_now)."""
    secret_values = load_secrets(settings)
    password = secret_values["airflow_admin_password"]
    path = settings.airflow_home / "simple_auth_manager_passwords.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"admin": password}, handle)
    return password, created


def airflow_login(settings: Settings) -> tuple[str, str]:
    """(user, password) of the local Airflow admin."""
    return "admin", load_secrets(settings)["airflow_admin_password"]
