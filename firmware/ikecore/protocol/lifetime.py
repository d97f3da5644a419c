"""The lifetime in force when the peer silently keeps a shorter one than we proposed (portable).

RFC 2407 section 4.6.3.1 lets a responder announce a shorter lifetime (RESPONDER-LIFETIME, handled
in phase1.py and quickmode.py); Libreswan never sends it: as responder it accepts our 28800 s /
3600 s and renews or deletes at its own shorter ikelifetime / salifetime. The wire shows that
lifetime twice, and we learn it from either:

- its rekey: the new IKE SA or quick mode it starts offers its own lifetime. The SA it renews
  was living by that lifetime too: it gets it (and expires then, as it will at the peer).
- its delete of an SA well before our renewal time (see DELETE_EVIDENCE_MIN_S): the age of the
  SA is the peer's lifetime.

What we learn applies to the SAs we negotiate later with that peer / connection (we offer it, so
both ends agree explicitly) until the daemon restarts or the peer or connection is reconfigured.
A peer that deletes an SA by hand also reads as a shorter lifetime: we then renew earlier than
needed, which costs an exchange, never a tunnel.
"""

from .ikesa import rekey_margin

# The shortest lifetime config.py accepts: a delete younger than this is not a lifetime.
DELETE_EVIDENCE_MIN_S = 60


class Learned:
    """Lifetimes learned from a peer, per ("peer", name) or ("connection", name)."""

    def __init__(self):
        self._seconds = {}

    def get(self, kind, name):
        return self._seconds.get((kind, name))

    def forget(self, kind, name):
        self._seconds.pop((kind, name), None)

    def _note(self, kind, name, seconds):
        known = self._seconds.get((kind, name))
        self._seconds[(kind, name)] = seconds if known is None else min(known, seconds)

    def in_force(self, kind, name, ours):
        """(lifetime to offer and use, note for the page or None) for a new SA."""
        learned = self.get(kind, name)
        if learned is None or learned >= ours:
            return ours, None
        return learned, "the peer's, learned earlier; ours is %d" % ours

    def from_rekey(self, kind, name, seconds, had):
        """The peer renewed an SA that lives `had` seconds with us, offering `seconds`: when
        shorter, the peer lived by it all along. -> the note for the renewed SA, or None."""
        if seconds >= had:
            return None
        self._note(kind, name, seconds)
        return "the peer's, learned from its rekey; we had %d" % had

    def from_delete(self, kind, name, age, lifetime_s):
        """The peer deleted an SA `age` seconds old that we would have kept `lifetime_s`.
        -> the lifetime learned, or None when the age is no evidence: too young to be a
        lifetime, or old enough to be the cleanup after a renewal at our own lifetime (which
        can come as early as lifetime - 2 margins: ikesa.rekey_after)."""
        age = int(age)
        if age < DELETE_EVIDENCE_MIN_S or age >= lifetime_s - 2 * rekey_margin(lifetime_s):
            return None
        self._note(kind, name, age)
        return age
