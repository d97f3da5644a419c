"""Each exchange's message without a payload its state's row requires (states.PHASE1,
quickmode.TABLE) is refused before the handler runs, with the diagnosis and notify the handlers
gave it before the tables: two sans-IO cores, real bytes, a hand-stepped clock. The sender's
IkeSa.message leaves the payload out of that one message, so an encrypted message is still
encrypted with the right keys and IV."""
import re

import pytest

from ikecore.protocol import codec
from ikecore.protocol import consts as C
from ikecore.protocol import phase1, quickmode
from ikecore.protocol.ikesa import IkeSa

OTHER = {"A": "B", "B": "A"}


def _strip(monkeypatch, link, sender, exchange, change):
    """The next message `sender` builds for `exchange` goes out changed (change(payloads) -> the
    payloads to send, or None to leave that message alone); once only."""
    core = link.core(sender)
    original = IkeSa.message
    done = []

    def message(self, ex, payloads, message_id=0, encrypt=False):
        if self.host is core.host and ex == exchange and not done:
            changed = change(list(payloads))
            if changed is not None:
                done.append(ex)
                payloads = changed
        return original(self, ex, payloads, message_id, encrypt)

    monkeypatch.setattr(IkeSa, "message", message)
    return done


def _without(ptype, when=None):
    """Leave out payload type `ptype` from the first message that has it (and `when`)."""
    def change(payloads):
        if not any(p.TYPE == ptype for p in payloads):
            return None
        if when is not None and not any(p.TYPE == when for p in payloads):
            return None
        return [p for p in payloads if p.TYPE != ptype]
    return change


def _record_handlers(monkeypatch, handlers):
    """Wrap each bound handler so the test sees which ran: [(state, subject)]."""
    ran = []

    def recorder(state, function):
        def handler(subject, *args):
            ran.append((state, subject))
            return function(subject, *args)
        return handler

    for state, function in list(handlers.items()):
        monkeypatch.setitem(handlers, state, recorder(state, function))
    return ran


def _one(link, name):
    (ike,) = link.ike(name)
    return ike


def _sent_after(link, name, start):
    return [data for who, data in link.trace[start:] if who == name]


def _clear_notifies(datagrams):
    found = []
    for data in datagrams:
        msg = codec.decode_message(data)
        if msg.exchange == C.EXCHANGE_INFORMATIONAL and not msg.flags & C.FLAG_ENCRYPTION:
            found += [p.notify_type for p in msg.payloads if isinstance(p, codec.NotifyPayload)]
    return found


# (mode, the side that sends the message, its exchange, the payload left out, the payload the
#  message must have for the leaving out to apply, the refusing side's state number, the
#  refusal: a malformed message's log line, or a diagnosis for a decrypted phase 1 message)
PHASE1_CASES = [
    ("main", "A", C.PT_SA, None, 1, "malformed", r"message 1 lacks SA \(has VID"),
    ("main", "B", C.PT_SA, None, 3, "malformed", r"message 2 lacks SA \(has VID"),
    ("main", "A", C.PT_KE, C.PT_NONCE, 3, "malformed", r"message 3 lacks KE \(has NONCE"),
    ("main", "B", C.PT_NONCE, C.PT_KE, 5, "malformed", r"message 4 lacks NONCE \(has KE"),
    ("main", "A", C.PT_ID, None, 5, "decrypt", "message 5 did not decrypt to valid payloads"),
    ("main", "B", C.PT_ID, None, 7, "decrypt", "message 6 did not decrypt to valid payloads"),
    ("aggressive", "A", C.PT_KE, None, 1, "malformed",
     r"aggressive mode message 1 lacks KE \(has SA NONCE ID"),
    ("aggressive", "B", C.PT_ID, None, 3, "malformed",
     r"aggressive mode message 2 lacks ID \(has SA KE NONCE HASH"),
]


@pytest.mark.parametrize("mode, sender, ptype, when, state, refusal, text", PHASE1_CASES)
def test_phase1_message_without_a_required_payload(ike_link_factory, monkeypatch, mode, sender,
                                                   ptype, when, state, refusal, text):
    link = ike_link_factory(both={"mode": mode})
    refuser = OTHER[sender]
    exchange = C.EXCHANGE_MAIN if mode == "main" else C.EXCHANGE_AGGRESSIVE
    done = _strip(monkeypatch, link, sender, exchange, _without(ptype, when))
    before = {}

    def note(who, index, data):
        # Where the trace stood when the changed message went out (what the refuser sent after).
        if who == sender and done and "at" not in before:
            before["at"] = len(link.trace)
        return False

    ran = []
    for handlers in phase1._HANDLERS.values():
        ran += [_record_handlers(monkeypatch, handlers)]
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=note)
    assert done, "the message was never built"
    ike = _one(link, refuser)
    (sa,) = link.core(refuser).ike_sas.values()
    # Refused before its handler ran: the handler of the refuser's state was never called.
    calls = [call for recorded in ran for call in recorded]
    assert not [name for name, subject in calls if subject is sa and name == sa.machine.state]
    assert bool(calls) == (state != 1)      # the recording works: earlier messages' handlers ran
    assert ike["state"] == state and ike["status"] == "Negotiating"
    answers = _clear_notifies(_sent_after(link, refuser, before["at"]))
    # RFC 2408 section 5: the one cleartext notify a negotiation without keys may send.
    assert answers == [C.PAYLOAD_MALFORMED]
    if refusal == "malformed":
        lines = [line for line in link.logs(refuser, "warning") if "malformed message" in line]
        assert len(lines) == 1 and re.search(text, lines[0]), lines
        assert link.core(refuser).counters["malformed"] == 1
        assert ike["last_error"] is None
    else:
        # Encrypted with the key, yet not the payloads the state needs: what a different
        # pre-shared key looks like.
        assert text in ike["last_error"] and "pre-shared key mismatch" in ike["last_error"]
        assert link.core(refuser).counters["malformed"] == 0
    # The refused message changed nothing: a retransmission of it is refused again, quietly,
    # and the state number stays.
    link.step(5)
    assert _one(link, refuser)["state"] == state


QUICK_CASES = [
    # sender, the change, the refusal's log line
    ("A", _without(C.PT_NONCE), r"quick mode message 1 lacks NONCE \(has HASH SA ID ID\)"),
    ("A", lambda p: p[1:] + p[:1],
     r"quick mode message 1 must start with HASH \(has SA NONCE ID ID HASH\)"),
    ("B", _without(C.PT_SA), r"quick mode message 2 lacks SA \(has HASH NONCE ID ID\)"),
    ("A", lambda p: [codec.VendorPayload(b"no hash")] if len(p) == 1 else None,
     r"quick mode message 3 lacks HASH \(has VID\)"),
]


@pytest.mark.parametrize("sender, change, text", QUICK_CASES)
def test_quick_mode_message_without_a_required_payload(ike_link_factory, monkeypatch, sender,
                                                       change, text):
    link = ike_link_factory()
    refuser = OTHER[sender]
    done = _strip(monkeypatch, link, sender, C.EXCHANGE_QUICK, change)
    ran = _record_handlers(monkeypatch, quickmode._HANDLERS)
    link.a.initiate("lan", link.clock.now)      # phase 1, then the quick mode of "lan"
    link.flush()
    assert done, "the message was never built"
    refused = {"1": quickmode.QR_NEW, "2": quickmode.QI_1_SENT, "3": quickmode.QR_2_SENT}[
        re.search(r"message (\d)", text).group(1)]
    (sa,) = link.core(refuser).ike_sas.values()
    assert not [state for state, subject in ran
                if state == refused and (subject is sa or getattr(subject, "sa", None) is sa)]
    assert bool(ran) == (refused != quickmode.QR_NEW)
    start = [i for i, (who, data) in enumerate(link.trace)
             if codec.decode_header(data).exchange == C.EXCHANGE_QUICK][0]
    lines = [line for line in link.logs(refuser, "warning") if "malformed message" in line]
    assert len(lines) == 1 and re.search(text, lines[0]), lines
    assert link.core(refuser).counters["malformed"] == 1
    # Authenticated keys: nothing is said in clear, nothing else happens.
    assert _clear_notifies(_sent_after(link, refuser, start)) == []
    assert _one(link, refuser)["state"] == 9 and _one(link, refuser)["last_error"] is None
    if sender == "A" and "message 3" not in text:
        assert link.sas(refuser) == [] and link.installed(refuser) == []
