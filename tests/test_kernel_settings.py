"""Kernel(...) settings: a typo is an error, never a silently ignored option."""

import pytest

from runtime import Kernel
from runtime.config import PART_SETTINGS, Config


def test_a_misspelt_option_names_itself_and_the_closest_valid_one():
    with pytest.raises(TypeError) as info:
        Kernel(proccessors=1, quantm=0.001)
    message = str(info.value)
    assert "'proccessors' (did you mean 'processors'?)" in message
    assert "'quantm' (did you mean 'quantum'?)" in message


def test_a_misspelt_part_setting_is_refused_too():
    with pytest.raises(TypeError, match=r"'polcy' \(did you mean 'policy'\?\)"):
        Kernel(polcy="lru")


def test_an_option_like_nothing_lists_the_options():
    with pytest.raises(TypeError) as info:
        Kernel(colour="blue")
    assert "'colour'" in str(info.value) and "policy" in str(info.value) and "processors" in str(info.value)


def test_every_part_setting_is_accepted_and_reaches_its_part():
    with Kernel(frames=16, policy="lru", max_buffers=8, max_locks=16, max_eventcounts=16) as k:
        assert k.vm.policy.name == "lru"
        assert (k.buffers.max, k.locks.capacity, k.eventcounts.capacity) == (8, 16, 16)


def test_the_table_states_the_defaults_the_parts_use():
    with Kernel(frames=16) as k:
        d = {name: default for name, (default, _) in PART_SETTINGS.items()}
        assert k.vm.policy.name == d["policy"]
        assert (k.vm.resident_limit, k.vm.page_limit) == (d["resident_limit"], d["page_limit"])
        g = k.vm.geo
        assert (g.max_as, g.vpages, g.max_blocks) == (d["max_address_spaces"], d["address_space_pages"],
                                                      d["max_blocks"])
        assert (k.buffers.max, k.locks.capacity, k.eventcounts.capacity) == (d["max_buffers"], d["max_locks"],
                                                                           d["max_eventcounts"])
        assert k.locks.slice == d["sync_slice"] and k.locks.spin == d["sync_spin"]
        assert k.buffers.malloc_tuning == d["buffer_malloc_tuning"]


def test_a_part_cannot_read_an_undeclared_setting():
    with pytest.raises(KeyError, match="PART_SETTINGS"):
        Config().get("no_such_setting")
