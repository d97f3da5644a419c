"""The driver <-> core contract (ikecore.protocol.api.CoreApi) is what both cores implement: the
real IkeCore and the daemon tests' stand-in define every method of it with its parameters, so
the driver never needs to ask whether a core has one."""
import inspect
import re

import pytest

from ikecore.protocol.api import CoreApi
from ikecore.protocol.core import IkeCore

from daemon_fake_core import FakeCore

METHODS = sorted(name for name, value in vars(CoreApi).items()
                 if callable(value) and not name.startswith("_"))


def test_the_contract_names_what_the_driver_calls():
    with open(inspect.getsourcefile(__import__("ikecore.driver", fromlist=["x"]))) as f:
        driver = f.read()
    called = set(re.findall(r"self\.core\.(\w+)", driver))
    assert called <= set(METHODS) | {"wall_offset", "counters"}, called - set(METHODS)
    assert "hasattr(self.core" not in driver and "getattr(self.core" not in driver


@pytest.mark.parametrize("core_class", [IkeCore, FakeCore], ids=["IkeCore", "FakeCore"])
@pytest.mark.parametrize("name", METHODS)
def test_a_core_implements_each_method_of_the_contract(core_class, name):
    method = getattr(core_class, name)
    assert method is not getattr(CoreApi, name), "%s does not implement %s" % (
        core_class.__name__, name)
    assert list(inspect.signature(method).parameters) == \
        list(inspect.signature(getattr(CoreApi, name)).parameters)
