"""The interop zoo (validation/interop_zoo.py): >= 30 of the peers' tutorial and example
models, converted and compared in float32 and float64 where the peer allows; ``rep.ok``
on every one, with every layer firing. The fast entries run in the default suite; the
whole zoo with ``-m slow`` (about 2 minutes). The table in docs/howto/check_framework.md
is ``python3 -m validation.interop_zoo``'s output.
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")
pytest.importorskip("norse")

from validation.interop_zoo import ZOO, run  # noqa: E402

CASES = [(entry, dtype) for entry in ZOO for dtype in entry.dtypes]


def _id(case):
    entry, dtype = case
    return f"{entry.name}-{dtype}"


def test_the_zoo_has_at_least_30_models_from_all_three_peers():
    assert len(ZOO) >= 30
    assert {entry.peer for entry in ZOO} == {"snntorch", "spikingjelly", "norse"}
    assert sum(len(entry.dtypes) for entry in ZOO) >= 45        # float32 and float64 where allowed


def _check(entry, dtype):
    rep = run(entry, dtype)
    assert rep.ok, f"{entry.name} ({dtype}):\n{rep}"
    assert min(rep.firing_rates) > 0, f"{entry.name}: a silent layer checks nothing\n{rep}"
    assert rep.rows


@pytest.mark.parametrize("case", [c for c in CASES if c[0].fast], ids=_id)
def test_fast_zoo_models_agree(case):
    _check(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if not c[0].fast], ids=_id)
def test_every_zoo_model_agrees(case, request):
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("the whole zoo runs with -m slow")
    _check(*case)
