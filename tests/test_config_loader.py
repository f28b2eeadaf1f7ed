"""fobs.components.config: the strict loader's shared checks."""

import pytest

from fobs.components.config import (
    ConfigError,
    credentials_flag,
    nats_subject,
    user_and_password,
)
from fobs.components.runtime import ComponentConfig
from fobs.syslog_agg.monit.config import HttpConfig


@pytest.mark.parametrize("subject", ["fobs.alerts", "logs", "a.b-c_d"])
def test_publishable_subjects_pass(subject: str) -> None:
    nats_subject(subject, "subject")


@pytest.mark.parametrize("subject", ["", "fobs.*", "fobs.>", "a b", "a..b", ".a", "a."])
def test_bad_subjects_name_the_key(subject: str) -> None:
    with pytest.raises(ConfigError, match="^alert_subject: not a NATS subject"):
        nats_subject(subject, "alert_subject")


@pytest.mark.parametrize("user,password", [("", ""), ("u", "p")])
def test_user_and_password_together(user: str, password: str) -> None:
    user_and_password(user, password)


@pytest.mark.parametrize("config", [ComponentConfig(user="u"), ComponentConfig(password="p"),
                                    HttpConfig(user="u"), HttpConfig(password="p")])
def test_every_daemon_says_the_same_about_a_lone_user_or_password(config: object) -> None:
    with pytest.raises(ConfigError,
                       match=r"^user: user and password go together \(or leave both empty\)$"):
        config.validate()  # type: ignore[attr-defined]


def test_credentials_flag() -> None:
    assert credentials_flag("u:p:q") == ("u", "p:q")
    for bad in ("nopass", "u:", ":p"):
        with pytest.raises(ConfigError, match="^--credentials: expected USER:PASS$"):
            credentials_flag(bad)
