"""The lab's zone-role rewrite is text surgery on named.conf: table-test it."""

from __future__ import annotations

import pytest

from orchestrator.lab import bind, dnsrole

CONF = """options { directory "/x"; };

zone "lab.internal." {
    type secondary;
    file "lab-internal.secondary.db";
    primaries { 127.0.1.1 port 53 key lab-xfer; };
    allow-notify { key lab-xfer; };
    allow-transfer { key lab-xfer; };
};

zone "example.test." {
    type secondary;
    file "example-test.secondary.db";
    primaries { 127.0.3.1 port 53 key lab-xfer; };
};
"""


def test_promotion_rewrites_only_that_zone_and_keeps_its_data_file() -> None:
    zone = next(z for z in bind.ZONES if z.name == "lab.internal.")
    body = dnsrole.primary_body(zone, "dc2", dnsrole.data_file(CONF, zone.name))
    promoted = dnsrole.rewrite(CONF, zone.name, body)
    assert dnsrole.current_type(promoted, "lab.internal.") == "primary"
    assert dnsrole.current_type(promoted, "example.test.") == "secondary"
    block = dnsrole.zone_block(promoted, "lab.internal.").group(1)
    assert 'file "lab-internal.secondary.db";' in block
    assert "masterfile-format raw;" in block
    assert f"grant {zone.ddns_key} zonesub ANY;" in block
    assert "198.18.1.1 port 53 key lab-xfer;" in block  # notifies dc1 when it is back
    assert promoted.count('zone "') == 2


def test_demotion_follows_the_given_primary() -> None:
    demoted = dnsrole.rewrite(CONF, "lab.internal.", dnsrole.secondary_body("127.0.2.1", "x.db"))
    block = dnsrole.zone_block(demoted, "lab.internal.").group(1)
    assert "primaries { 127.0.2.1 port 53 key lab-xfer; };" in block
    assert dnsrole.current_type(demoted, "lab.internal.") == "secondary"


@pytest.mark.parametrize("zone", ["nope.test.", "lab.internal"])
def test_an_unknown_zone_is_one_clear_error(zone: str) -> None:
    with pytest.raises(dnsrole.RoleError, match=f"zone {zone} is not in this named.conf"):
        dnsrole.zone_block(CONF, zone)
