"""A missing opt-out flag reads as "not opted out" in every system, so they agree."""

from __future__ import annotations

import pytest

from mapping.fieldmap import from_entity, to_entity


@pytest.mark.parametrize(("native", "expected"), [(None, False), ("", False), ("false", False), ("true", True)])
def test_hubspot_optout_null_reads_as_false(native, expected) -> None:
    c = to_entity("hubspot", "contacts", {"email": "a@b.co", "hs_email_optout": native})
    assert c.do_not_contact is expected


def test_salesforce_and_hubspot_agree_on_an_unset_flag() -> None:
    sf = to_entity("salesforce", "Contact", {"LastName": "X", "HasOptedOutOfEmail": False})
    hs = to_entity("hubspot", "contacts", {"lastname": "X"})
    assert sf.do_not_contact == hs.do_not_contact is False
    assert from_entity("hubspot", "contacts", sf)["hs_email_optout"] == "false"
