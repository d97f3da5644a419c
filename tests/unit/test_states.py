"""The seed's negotiation state numbers and the transition tables."""
import pytest

from ikecore.protocol import states

SEED = {  # the seed's table, column by column: number -> meaning
    ("main", "initiator"): [0, 1, 3, 4, 5, 6, 7, 8, 9],
    ("main", "responder"): [0, 1, 2, 3, 4, 5, 6, 7, 9],
    ("aggressive", "initiator"): [0, 1, 3, 4, 9],
    ("aggressive", "responder"): [0, 1, 2, 3, 4, 9],
}


@pytest.mark.parametrize("key", sorted(SEED))
def test_numbers_are_the_seeds(key):
    assert [n for _, n, _ in states.STATES[key]] == SEED[key]


def _walk(mode, role, inputs):
    m = states.Machine(mode, role)
    seen = [m.number]
    for inp in inputs:
        m.feed(inp)
        seen.append(m.number)
    return m, seen


def test_main_initiator_story():
    S, V = states.SENT, states.VALID
    m, seen = _walk("main", "initiator", [states.START, S, V, S, V, S, V, states.ESTABLISHED])
    assert seen == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    assert m.established and m.story == "IKE SA established"


def test_main_responder_story():
    S, V = states.SENT, states.VALID
    _, seen = _walk("main", "responder", [states.RECEIVED, V, S, V, S, V, S, states.ESTABLISHED])
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 9]


def test_aggressive_stories():
    _, seen = _walk("aggressive", "initiator",
                    [states.START, states.SENT, states.VALID, states.ESTABLISHED])
    assert seen == [0, 1, 3, 4, 9]
    _, seen = _walk("aggressive", "responder",
                    [states.RECEIVED, states.VALID, states.SENT, states.VALID, states.ESTABLISHED])
    assert seen == [0, 1, 2, 3, 4, 9]


def test_illegal_input_leaves_state_unchanged():
    m = states.Machine("main", "initiator")
    m.feed(states.START)
    with pytest.raises(states.IllegalTransition):
        m.feed(states.VALID)           # nothing was sent yet
    assert m.number == 1 and m.state == "MI_START"
    r = states.Machine("main", "responder")
    with pytest.raises(states.IllegalTransition):
        r.feed(states.START)           # a responder never "starts"
    assert r.number == 0


def test_status_text():
    assert states.status_text(0) == "Idle"
    assert states.status_text(5) == "Negotiating"
    assert states.status_text(9) == "Activated"


def test_tables_are_validated(monkeypatch):
    bad = dict(states.TRANSITIONS)
    bad[("main", "initiator")] = dict(bad[("main", "initiator")])
    bad[("main", "initiator")]["MI_START"] = {states.SENT: "MI_NOWHERE"}
    monkeypatch.setattr(states, "TRANSITIONS", bad)
    with pytest.raises(ValueError, match="undeclared"):
        states._validate()


def test_describe_draws_every_state():
    text = states.describe()
    for rows in states.STATES.values():
        for name, number, story in rows:
            assert name in text and story in text


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="no negotiation states"):
        states.Machine("base", "initiator")


def test_phase1_handlers_are_checked_against_the_transitions(monkeypatch):
    from ikecore.protocol import phase1
    handlers = dict(phase1._HANDLERS)
    del handlers[(states.MAIN, states.RESPONDER, "MR_1_SENT")]
    handlers[(states.MAIN, states.INITIATOR, "MI_ACTIVATED")] = phase1.main_inR3
    monkeypatch.setattr(phase1, "_HANDLERS", handlers)
    with pytest.raises(ValueError, match=r"no handler for \[\('main', 'responder', 'MR_1_SENT'\)\]"
                                         r".*wait for no message: \[\('main', 'initiator', "
                                         r"'MI_ACTIVATED'\)\]"):
        phase1._check_handlers()
