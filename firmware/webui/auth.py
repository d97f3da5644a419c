"""Who may use the web UI: the admin password, sessions, CSRF tokens and the login rate limit.

Password policy (documented in firmware/webui/README.md): until a password is stored in the state
directory, the password is "admin" and logging in with it forces a change before anything else
is shown. The hash is scrypt with a random salt, stored with its parameters so they can be raised
later without breaking old files.
"""
import hashlib
import hmac
import os
import secrets
import time

PASSWORD_FILE = "admin.password"
DEFAULT_PASSWORD = "admin"
MIN_PASSWORD_LENGTH = 8
# scrypt cost: 16 MiB of memory and well under a second even on a small arm64 board.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1

SESSION_COOKIE = "ikecore_session"
SESSION_IDLE_S = 3600
MAX_SESSIONS = 1000                 # anonymous (login page) sessions included; oldest go first
MAX_FAILURES = 5
LOCKOUT_S = 30


class PasswordError(Exception):
    """A new password that cannot be used; the text says why."""


PBKDF2_ITERATIONS = 200000


def hash_password(password, salt=None, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P):
    """"scrypt$N$r$p$salt$hash" (hex), or "pbkdf2-sha256$iterations$salt$hash" when this
    Python's hashlib has no scrypt (a build without OpenSSL's KDFs)."""
    salt = salt if salt is not None else os.urandom(16)
    if not hasattr(hashlib, "scrypt"):
        return _pbkdf2(password, salt, PBKDF2_ITERATIONS)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                            maxmem=256 * 1024 * 1024, dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (n, r, p, salt.hex(), digest.hex())


def _pbkdf2(password, salt, iterations):
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, 32)
    return "pbkdf2-sha256$%d$%s$%s" % (iterations, salt.hex(), digest.hex())


def verify_password(password, stored):
    try:
        parts = stored.strip().split("$")
        if parts[0] == "scrypt" and len(parts) == 6:
            _, n, r, p, salt, digest = parts
            expected = hash_password(password, bytes.fromhex(salt), int(n), int(r), int(p))
        elif parts[0] == "pbkdf2-sha256" and len(parts) == 4:
            _, iterations, salt, digest = parts
            expected = _pbkdf2(password, bytes.fromhex(salt), int(iterations))
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(expected.split("$")[-1], digest)


def check_new_password(password, confirm=None):
    if confirm is not None and password != confirm:
        raise PasswordError("the two passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError("use at least %d characters" % MIN_PASSWORD_LENGTH)
    if password == DEFAULT_PASSWORD:
        raise PasswordError("choose a password other than the default")


class PasswordStore:
    """The admin password hash, one line in <state-dir>/admin.password (0600)."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, PASSWORD_FILE)

    def is_set(self):
        return os.path.exists(self.path)

    def check(self, password):
        """(ok, must_change): must_change when the default password was used."""
        try:
            with open(self.path) as handle:
                stored = handle.read()
        except FileNotFoundError:
            ok = hmac.compare_digest(password.encode("utf-8"), DEFAULT_PASSWORD.encode())
            return ok, ok
        return verify_password(password, stored), False

    def set(self, password):
        check_new_password(password)
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w") as handle:
            handle.write(hash_password(password) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


class Session:
    __slots__ = ("id", "csrf", "user", "must_change", "seen", "flash")

    def __init__(self, now):
        self.id = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.user = None            # "admin" once logged in
        self.must_change = False
        self.seen = now
        self.flash = None           # one message shown on the next page (after a redirect)

    def csrf_ok(self, token):
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class Sessions:
    """In-memory sessions (a restart logs everyone out, which is fine for a router)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._by_id = {}

    def new(self):
        now = self.clock()
        self._expire(now)
        while len(self._by_id) >= MAX_SESSIONS:
            oldest = min(self._by_id.values(), key=lambda s: s.seen)
            del self._by_id[oldest.id]
        session = Session(now)
        self._by_id[session.id] = session
        return session

    def get(self, session_id):
        session = self._by_id.get(session_id or "")
        now = self.clock()
        if session is None or now - session.seen > SESSION_IDLE_S:
            self._by_id.pop(session_id or "", None)
            return None
        session.seen = now
        return session

    def drop(self, session):
        self._by_id.pop(session.id, None)

    def drop_all_logged_in(self, keep=None):
        """After a password change every other logged-in session ends."""
        for sid in [s.id for s in self._by_id.values() if s.user and s is not keep]:
            del self._by_id[sid]

    def _expire(self, now):
        for sid in [s.id for s in self._by_id.values() if now - s.seen > SESSION_IDLE_S]:
            del self._by_id[sid]


class LoginLimiter:
    """MAX_FAILURES failed logins from one client lock it out for LOCKOUT_S seconds."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._failures = {}         # client -> (count, locked_until)

    def locked_for(self, client):
        count, until = self._failures.get(client, (0, 0.0))
        remaining = until - self.clock()
        return remaining if remaining > 0 else 0.0

    def failed(self, client):
        count, until = self._failures.get(client, (0, 0.0))
        count += 1
        if count >= MAX_FAILURES:
            self._failures[client] = (0, self.clock() + LOCKOUT_S)
        else:
            self._failures[client] = (count, until)

    def succeeded(self, client):
        self._failures.pop(client, None)
