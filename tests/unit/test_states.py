"""The seed's negotiation state numbers and the state tables (one row per state)."""
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
    assert [row.number for row in states.PHASE1[key].order] == SEED[key]


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


def _rows(key, **changes):
    """The rows of a phase 1 table, one of them (state=...) changed: a broken copy to build."""
    rows = []
    for row in states.PHASE1[key].order:
        if row.state == changes.get("state"):
            row = states.Row(row.state, row.number, row.story, row.on, row.next, row.handler,
                             row.message, row.required, row.first, row.optional, row.arrives)
            for field, value in changes.items():
                setattr(row, field, value)
        rows.append(row)
    return rows


def test_tables_are_validated():
    key = ("main", "initiator")
    with pytest.raises(ValueError, match="main mode initiator table, state MI_START: goes to "
                                         "undeclared MI_NOWHERE"):
        states.Table("main mode initiator", _rows(key, state="MI_START", next="MI_NOWHERE"))
    table = states.Table("main mode initiator", _rows(key, state="MI_3_SENT", next="MI_1_VALID"))
    with pytest.raises(ValueError, match="state MI_3_SENT: goes backwards to MI_1_VALID"):
        states.check_seed(key, table)
    table = states.Table("main mode initiator", _rows(key, state="MI_START", number=2))
    with pytest.raises(ValueError, match=r"numbers \(0, 2, 3"):
        states.check_seed(key, table)


@pytest.mark.parametrize("change, message", [
    (dict(required=(2,)), "state MI_1_SENT: required payload 2 is not a top-level payload type"),
    (dict(optional=(250,)), "state MI_1_SENT: optional payload 250 is not a top-level payload"),
    (dict(handler=None), "state MI_1_SENT: waits for the peer's message .* names no handler"),
    (dict(on=states.SENT), "state MI_1_SENT: names handler main_inR1_outI2 but waits for no "
                           "message"),
    (dict(on="arrived"), "state MI_1_SENT: unknown input 'arrived'"),
    (dict(message=None), "state MI_1_SENT: names no message"),
    (dict(first=4), "state MI_1_SENT: its first payload must be required too"),
    (dict(arrives="maybe"), "state MI_1_SENT: arrives 'maybe'"),
])
def test_a_broken_row_is_refused_naming_it(change, message):
    change["state"] = "MI_1_SENT"
    with pytest.raises(ValueError, match="main mode initiator table, " + message):
        states.Table("main mode initiator", _rows(("main", "initiator"), **change))


def test_a_state_declared_twice_is_refused():
    rows = _rows(("aggressive", "initiator"))
    with pytest.raises(ValueError, match="t table, state AI_IDLE: declared twice"):
        states.Table("t", rows + rows[:1])


def test_describe_draws_every_state():
    text = states.describe()
    for table in states.PHASE1.values():
        for row in table.order:
            assert row.state in text and row.story in text
            if row.handler is not None:
                assert row.handler in text


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="no negotiation states"):
        states.Machine("base", "initiator")


def test_every_handler_a_row_names_must_exist():
    """Each exchange binds its table's handler names at import; a name without a function is
    refused there, naming the row and the module."""
    from ikecore.protocol import phase1, quickmode
    table = states.Table("main mode responder",
                         _rows(("main", "responder"), state="MR_1_SENT", handler="main_inI2_outR9"))
    with pytest.raises(ValueError, match="main mode responder table, state MR_1_SENT: handler "
                                         "main_inI2_outR9 is not defined in phase1.py"):
        table.bind(vars(phase1).get, "phase1.py")
    assert set(phase1._HANDLERS[("main", "responder")]) == {"MR_START", "MR_1_SENT", "MR_2_SENT"}
    assert phase1._HANDLERS[("main", "initiator")]["MI_3_SENT"] is phase1.main_inR3
    assert quickmode._HANDLERS == {quickmode.QR_NEW: quickmode._new_request,
                                   quickmode.QI_1_SENT: quickmode.QuickMode.handle_response,
                                   quickmode.QR_2_SENT: quickmode.QuickMode.handle_final}


def test_the_quick_mode_table():
    from ikecore.protocol import quickmode
    t = quickmode.TABLE
    assert [r.state for r in t.order] == ["QR_NEW", "QI_1_SENT", "QR_2_SENT", "DONE", "FAILED"]
    assert t.rows["QR_NEW"].next == "QR_2_SENT" and t.rows["QI_1_SENT"].next == "DONE"
    assert t.rows["QR_2_SENT"].required == (8,) and t.rows["QR_2_SENT"].first == 8   # HASH
