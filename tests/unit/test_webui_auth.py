"""Password hashing and the login rate limiter of the web UI."""
from webui import auth


def test_scrypt_hash_verifies_and_is_salted():
    first, second = auth.hash_password("a password"), auth.hash_password("a password")
    assert first.startswith("scrypt$16384$8$1$") and first != second
    assert auth.verify_password("a password", first)
    assert not auth.verify_password("another", first)
    assert not auth.verify_password("a password", "garbage")
    assert not auth.verify_password("a password", "scrypt$x$y$z$00$00")


def test_pbkdf2_fallback_when_hashlib_has_no_scrypt(monkeypatch):
    monkeypatch.delattr(auth.hashlib, "scrypt")
    stored = auth.hash_password("a password")
    assert stored.startswith("pbkdf2-sha256$%d$" % auth.PBKDF2_ITERATIONS)
    assert auth.verify_password("a password", stored)
    assert not auth.verify_password("wrong", stored)


def test_limiter_locks_after_five_failures_then_releases():
    now = [0.0]
    limiter = auth.LoginLimiter(clock=lambda: now[0])
    for _ in range(auth.MAX_FAILURES - 1):
        limiter.failed("192.168.1.10")
    assert limiter.locked_for("192.168.1.10") == 0
    limiter.failed("192.168.1.10")
    assert limiter.locked_for("192.168.1.10") == auth.LOCKOUT_S
    assert limiter.locked_for("192.168.1.11") == 0          # per client
    now[0] += auth.LOCKOUT_S + 0.1
    assert limiter.locked_for("192.168.1.10") == 0


def test_sessions_expire_when_idle():
    now = [0.0]
    sessions = auth.Sessions(clock=lambda: now[0])
    session = sessions.new()
    assert sessions.get(session.id) is session
    now[0] += auth.SESSION_IDLE_S + 1
    assert sessions.get(session.id) is None
    assert sessions.get(None) is None
