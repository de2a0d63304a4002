"""The chaos trials (runtime/chaos/): a bounded number in the default suite,
thousands under `pytest -m slow` (and `vos chaos --trials N`)."""

import pytest

from runtime import chaos
from runtime.chaos import kernel as kernel_trial


def _check(outcomes):
    bad = [o for o in outcomes if not o.ok]
    assert not bad, "\n".join(f"{o.kind} seed {o.seed} ({o.setting}): {o.detail or o}" for o in bad)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind,trials", [("buffer", 16), ("lock", 4), ("memory", 4)])
def test_a_few_trials_of_each_kind(kind, trials):
    _check(chaos.run([kind], trials=trials, seed=1000))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", kernel_trial.MODES)
def test_the_vps_of_a_killed_kernel_are_gone_within_two_seconds(mode):
    """Paging was the case that ran forever: every fault re-armed the clock."""
    out = kernel_trial.trial(0, mode)
    _check([out])
    assert out.gone_s <= chaos.GONE_WITHIN


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("kind,trials", [("buffer", 2000), ("lock", 300), ("kernel", 60), ("memory", 300)])
def test_thousands_of_trials(kind, trials):
    _check(chaos.run([kind], trials=trials, seed=0))
