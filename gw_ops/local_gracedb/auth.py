"""Accounts and credentials of the local GraceDB service.

How credentials work
--------------------
* Anonymous callers read public data only (see :mod:`gw_ops.local_gracedb.permissions`).
* Every change (``POST``, ``PUT``, ``PATCH``, ``DELETE``) needs an account, and most
  need a role (``pipeline``, ``robot``, ``advocate``; see
  :mod:`gw_ops.local_gracedb.permissions` for what each may do).  The
  service accepts HTTP Basic credentials (what the ``ligo-gracedb`` client sends
  from a netrc file) and bearer tokens that the service itself signed
  (``POST <api>/token/`` with Basic credentials returns one; HS256, valid
  ``TOKEN_LIFETIME_S``).  Missing or wrong credentials give 401 and change nothing.
* Accounts live in ``<state>/gracedb/users.json`` (mode 0600), passwords only as
  salted PBKDF2-SHA256 hashes.
* The pipeline's own account (``SERVICE_ACCOUNT``, roles ``SERVICE_ROLES``) is created
  on first use by :func:`ensure_service_credentials`, which also writes ``<state>/netrc`` (0600)
  with ``machine <host> login gw-ops password <pw>``.  :func:`gw_ops.gracedb_client.gracedb_client`
  reads that file, so pipeline code never handles the password.
* A person gets an account with :func:`add_user` (wired as ``gw-ops gracedb
  adduser NAME [--role advocate]``); it prints a new password once.  Without a role
  the account reads everything and writes log comments only.  Use it with the stock client::

      printf 'machine 127.0.0.1 login NAME password PW\\n' >> ~/.netrc; chmod 600 ~/.netrc
      python -c "from ligo.gracedb.rest import GraceDb; \\
                 GraceDb('http://127.0.0.1:8090/api/', force_noauth=True).writeLabel('S1', 'DQV')"

  (``force_noauth=True`` stops the client from looking for SciTokens/X.509,
  after which it falls back to the netrc file, as ``curl --netrc`` would.)
  Running :func:`add_user` again for the same name replaces the password and roles.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import netrc
import os
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from gw_ops.config import Settings

#: Login of the pipeline's service account.
SERVICE_ACCOUNT = "gw-ops"
#: Roles an account can hold (an account without roles is an ordinary member).
ROLES = ("pipeline", "robot", "advocate")
#: Roles of the service account.  ``robot`` is what GWCelery's account does (superevents,
#: labels, logs, VOEvents, external events); ``pipeline`` because the mock pipeline of the
#: local stack uploads its G events with this account; ``advocate`` because the mock
#: vetting of the demo signs off ADV OK/NO with it.  A deployment with real advocates
#: gives them their own accounts (``gw-ops gracedb adduser NAME --role advocate``).
SERVICE_ROLES = ("advocate", "pipeline", "robot")
#: PBKDF2 iterations of stored password hashes.
HASH_ITERATIONS = 120_000
#: Lifetime (s) of bearer tokens the service issues.
TOKEN_LIFETIME_S = 3600


class AuthError(Exception):
    """Credentials were missing or wrong; the message says which."""


def gracedb_state_dir(settings: Settings) -> Path:
    """Folder of the local GraceDB's own state (accounts, token key, default SQLite)."""
    return settings.state_path / "gracedb"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def users_path(settings: Settings) -> Path:
    """File of the local GraceDB accounts (hashed passwords)."""
    return gracedb_state_dir(settings) / "users.json"


def netrc_path(settings: Settings) -> Path:
    """netrc file with the service account's credentials."""
    return settings.state_path / "netrc"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to a file only the owner can read (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


@contextlib.contextmanager
def _accounts_lock(settings: Settings):
    """Exclusive lock across processes while accounts are read-modified-written."""
    lock_file = private_dir(gracedb_state_dir(settings)) / "users.lock"
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = HASH_ITERATIONS) -> dict[str, object]:
    """Salted PBKDF2-SHA256 record of a password."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return {"algorithm": "pbkdf2_sha256", "iterations": iterations,
            "salt": salt.hex(), "hash": digest.hex()}


def _matches(record: dict, password: str) -> bool:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(record["salt"]),
                                 int(record["iterations"]))
    return hmac.compare_digest(digest.hex(), record["hash"])


def load_users(settings: Settings) -> dict[str, dict]:
    """Accounts by login (empty when none were created)."""
    try:
        return json.loads(users_path(settings).read_text())["users"]
    except FileNotFoundError:
        return {}


def _save_users(settings: Settings, users: dict[str, dict]) -> None:
    _write_private(users_path(settings), json.dumps({"users": users}, indent=1, sort_keys=True))


def check_roles(roles) -> list[str]:
    """``roles`` sorted and checked against :data:`ROLES` (``ValueError`` names an unknown one)."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")
    return sorted(set(roles))


def add_user(settings: Settings, name: str, roles=()) -> str:
    """Create (or reset) the account ``name`` and return its new password.

    The password is shown only here; the service keeps a salted hash.

    Parameters
    ----------
    settings : Settings
        Whose state folder holds the accounts.
    name : str
        Login, letters, digits, ``.``, ``_``, ``-`` and ``@`` only.
    roles : iterable of str
        Roles from :data:`ROLES`; none makes an ordinary member.

    Returns
    -------
    str
        The new password (43 URL-safe characters).
    """
    if not name or not all(c.isalnum() or c in "._-@" for c in name):
        raise ValueError(f"bad account name {name!r}")
    roles = check_roles(roles)
    password = secrets.token_urlsafe(32)
    with _accounts_lock(settings):
        users = load_users(settings)
        users[name] = {**hash_password(password), "created": time.time(), "roles": roles}
        _save_users(settings, users)
    return password


def _read_netrc_entry(settings: Settings, host: str) -> tuple[str, str] | None:
    try:
        entry = netrc.netrc(str(netrc_path(settings))).authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError):
        return None
    return (entry[0], entry[2]) if entry else None


def service_host(settings: Settings) -> str:
    """Host name the netrc entry is written for (the API root's host)."""
    return urlparse(settings.gracedb_api_url).hostname or settings.host


def ensure_service_credentials(settings: Settings) -> tuple[str, str]:
    """Make sure the pipeline's account and its netrc file exist; return ``(login, password)``.

    Idempotent: an existing account whose password the netrc file holds is kept.
    Otherwise a new password is drawn, its hash stored in ``users.json`` and the
    netrc file (``<state>/netrc``, mode 0600) rewritten.
    """
    host = service_host(settings)
    with _accounts_lock(settings):
        users = load_users(settings)
        existing = _read_netrc_entry(settings, host)
        if existing and existing[0] == SERVICE_ACCOUNT and SERVICE_ACCOUNT in users \
                and _matches(users[SERVICE_ACCOUNT], existing[1]):
            if users[SERVICE_ACCOUNT].get("roles") != list(SERVICE_ROLES):
                users[SERVICE_ACCOUNT]["roles"] = list(SERVICE_ROLES)  # made before roles existed
                _save_users(settings, users)
            return existing
        password = (existing[1] if existing and existing[0] == SERVICE_ACCOUNT
                    and SERVICE_ACCOUNT not in users else secrets.token_urlsafe(32))
        users[SERVICE_ACCOUNT] = {**hash_password(password), "created": time.time(),
                                  "roles": list(SERVICE_ROLES)}
        _save_users(settings, users)
        _write_private(netrc_path(settings),
                       f"machine {host} login {SERVICE_ACCOUNT} password {password}\n")
        return SERVICE_ACCOUNT, password


class Authenticator:
    """Checks the credentials of requests against ``users.json`` (re-read when it changes).

    PBKDF2 is deliberately slow (~50 ms), so a credential that verified once is
    remembered by its SHA-256 until the account file changes; repeated requests
    of the pipeline then cost microseconds.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._users: dict[str, dict] = {}
        self._mtime: float | None = None
        self._verified: dict[str, str] = {}
        self._token_key = self._load_token_key()
        # resolved once: every request stats the account file (resolving the state
        # folder each time cost about 0.2 ms per request)
        self._users_path = users_path(settings)

    def _load_token_key(self) -> bytes:
        key_file = gracedb_state_dir(self.settings) / "token.key"
        with _accounts_lock(self.settings):
            if not key_file.exists():
                _write_private(key_file, secrets.token_hex(32))
            return bytes.fromhex(key_file.read_text().strip())

    def _current_users(self) -> dict[str, dict]:
        try:
            mtime = self._users_path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self._users = load_users(self.settings)
            self._verified.clear()
            self._mtime = mtime
        return self._users

    def check_password(self, name: str, password: str) -> bool:
        """Whether ``password`` is the password of account ``name``."""
        fingerprint = hashlib.sha256(f"{name}\0{password}".encode()).hexdigest()
        with self._lock:
            users = self._current_users()
            if self._verified.get(name) == fingerprint:
                return True
            record = users.get(name)
        if record is None or not _matches(record, password):
            return False
        with self._lock:
            self._verified[name] = fingerprint
        return True

    def roles(self, name: str | None) -> frozenset[str]:
        """Roles of account ``name`` (empty for anonymous callers and ordinary members)."""
        if name is None:
            return frozenset()
        with self._lock:
            return frozenset(self._current_users().get(name, {}).get("roles", ()))

    def issue_token(self, name: str) -> dict[str, object]:
        """A signed bearer token for account ``name``."""
        import jwt
        now = int(time.time())
        token = jwt.encode({"sub": name, "iat": now, "exp": now + TOKEN_LIFETIME_S,
                            "aud": "gw-ops-gracedb", "scope": "gracedb.read gracedb.write"},
                           self._token_key, algorithm="HS256")
        return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S}

    def sign(self, claims: dict[str, object], audience: str, lifetime_s: float) -> str:
        """A token of ``claims`` for ``audience``, signed with the service's key (HS256).

        The web pages use it for their session cookie and form tokens, each with an
        audience of its own, so that no token is accepted where another kind is due.
        """
        import jwt
        now = int(time.time())
        return jwt.encode({**claims, "iat": now, "exp": now + int(lifetime_s), "aud": audience},
                          self._token_key, algorithm="HS256")

    def verify(self, token: str, audience: str) -> dict[str, object] | None:
        """Claims of a token made by :meth:`sign` for ``audience``; ``None`` when it is
        forged, expired, for another audience, or names an account that no longer exists."""
        import jwt
        try:
            claims = jwt.decode(token, self._token_key, algorithms=["HS256"], audience=audience)
        except jwt.PyJWTError:
            return None
        with self._lock:
            known = claims.get("sub") in self._current_users()
        return claims if known else None

    def authenticate(self, authorization: str | None) -> str | None:
        """Account named by an ``Authorization`` header; ``None`` when there is none.

        Raises
        ------
        AuthError
            When credentials are present but wrong, expired or malformed.
        """
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                name, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise AuthError("Invalid basic header. Credentials not correctly base64 encoded.") from None
            if not self.check_password(name, password):
                raise AuthError("Invalid username/password.")
            return name
        if scheme == "bearer":
            import jwt
            try:
                claims = jwt.decode(credentials.strip(), self._token_key, algorithms=["HS256"],
                                    audience="gw-ops-gracedb")
            except jwt.PyJWTError as exc:
                raise AuthError(f"Invalid token: {exc}") from exc
            name = claims.get("sub")
            with self._lock:
                known = name in self._current_users()
            if not known:
                raise AuthError("Invalid token: unknown account")
            return name
        raise AuthError(f"Unsupported authorization scheme {scheme!r}")
