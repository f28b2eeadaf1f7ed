"""The collector tests' fixtures, defined in their helper modules and exposed here for pytest.

Test files import only the helpers they call (factories, fake servers); a fixture is named as a
test's parameter, so importing it too would shadow it (ruff F811).
"""

from tests.collector.collector_helpers import make_collector
from tests.collector.write_helpers import db, fake_influx, small_body_influxd
from tests.components.reference_helpers import started

__all__ = ["db", "fake_influx", "make_collector", "small_body_influxd",
           "started"]
