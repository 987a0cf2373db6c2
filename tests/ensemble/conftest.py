"""The fixture every ensemble test starts from."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")


@pytest.fixture
def ensemble_factory(tmp_path):
    made = []

    def make(voters=3, observers=0, **kw):
        e = Ensemble(TARGET, tmp_path / ("e%d" % len(made)), voters=voters, observers=observers, **kw)
        made.append(e)
        try:
            e.start()
        except Exception as err:
            pytest.fail("ensemble did not start: %s\n%s" % (err, e.log_tails()), pytrace=False)
        return e

    yield make
    for e in made:
        e.stop_all()
