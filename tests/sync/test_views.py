"""Record views after our own writes (pure)."""

from __future__ import annotations

from sync.views import after_update, written_view


def test_a_phone_written_replaces_the_extension_read_from_the_old_one() -> None:
    before = {"phone": "+13129061628", "title": "CTO", "extras": {"phone_extension": "8334", "lead_company": "V"}}
    written = written_view("salesforce", "Lead", {"Phone": "+13129066347"})
    assert written == {"phone": "+13129066347"}
    after = after_update(before, written)
    assert after == {"phone": "+13129066347", "title": "CTO", "extras": {"lead_company": "V"}}
    assert before["extras"]["phone_extension"] == "8334"  # the input is not changed


def test_other_writes_leave_the_extension_and_blanks_change_nothing() -> None:
    before = {"phone": "+13129061628", "title": "CTO", "extras": {"phone_extension": "8334"}}
    assert after_update(before, {"title": "CEO"}) == {**before, "title": "CEO"}
    assert after_update(before, {"phone": None}) == before


def test_an_extension_that_was_the_only_extra_leaves_no_extras_key() -> None:
    """A record view without extras has no ``extras`` key (``map_record``): the view after
    the write must say the same, or the read-back hashes differently."""
    after = after_update({"phone": "+13129061628", "extras": {"phone_extension": "77"}}, {"phone": "+13129066347"})
    assert after == {"phone": "+13129066347"}
