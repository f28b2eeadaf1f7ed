"""fobs.components.config: the strict loader's shared checks."""

import pytest

from fobs.components.config import ConfigError, nats_subject


@pytest.mark.parametrize("subject", ["fobs.alerts", "logs", "a.b-c_d"])
def test_publishable_subjects_pass(subject: str) -> None:
    nats_subject(subject, "subject")


@pytest.mark.parametrize("subject", ["", "fobs.*", "fobs.>", "a b", "a..b", ".a", "a."])
def test_bad_subjects_name_the_key(subject: str) -> None:
    with pytest.raises(ConfigError, match="^alert_subject: not a NATS subject"):
        nats_subject(subject, "alert_subject")
