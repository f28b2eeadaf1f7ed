"""Who may say what on the bus: nats-server users with per-role permissions, for `fobs up`.

Without authentication anyone who reaches NATS can send `vcap.component.discover` and read every
component's varz credentials in the answers, or announce itself as a `Collector` and make a
sharding collector hand over its targets (issue 9, findings 9 and 13). So `fobs up` gives every
process its own NATS user, and each user only the subjects its role needs:

- a component announces, says goodbye and answers discover; it can read neither announces nor
  other processes' discover answers (`_INBOX.>`), so it never sees another's credentials;
- a collector alone sends discover, reads announces and answers, and alone publishes and reads
  `fobs.collector.>` (the membership heartbeat): a collector identity is a collector user;
- the syslog aggregator, alert evaluator and supervisor add the subjects they publish on;
- the operator (`fobs tail`, watching alerts) only reads logs and alerts.

Answers to discover go to the requester's reply inbox through `allow_responses` (one answer
per request received), never through a publish permission on `_INBOX.>`.
The rendering is nats-server's config syntax; strings are JSON-quoted, which it accepts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from fobs.components import wire

INBOXES = "_INBOX.>"            # nats clients' reply inboxes (discover's scatter-gather)
# What the reference components (DEA, router, stager) say to each other, as in Cloud Foundry.
CF_SUBJECTS = ("dea.>", "router.>", "staging", "droplet.>")


@dataclass(frozen=True)
class Role:
    """Allow lists: whatever is not listed is refused by the server (a permissions violation)."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    responses: bool = True        # may answer requests it received (discover)


COMPONENT = Role(publish=(wire.ANNOUNCE, wire.UNREGISTER), subscribe=(wire.DISCOVER,))


def roles() -> dict[str, Role]:
    """Each role's subjects, taken from where the daemons define them (the defaults `fobs up`
    runs with); imported here, not at the top, so `fobs up --help` stays quick."""
    from fobs.collector.membership import SUBJECT as HEARTBEAT
    from fobs.dashboards.alertd import EvaluationConfig
    from fobs.syslog_agg.config import TailConfig
    from fobs.syslog_agg.monit.config import DEFAULT_ALERT_SUBJECT
    collectors = HEARTBEAT.rsplit(".", 1)[0] + ".>"   # the heartbeat and whatever comes next
    tail = TailConfig().subject_prefix + ".>"
    alerts = EvaluationConfig().subject
    return {
        "component": COMPONENT,
        "cf": Role(publish=(*COMPONENT.publish, *CF_SUBJECTS),
                   subscribe=(*COMPONENT.subscribe, *CF_SUBJECTS)),
        "collector": Role(
            publish=(*COMPONENT.publish, wire.DISCOVER, collectors),
            subscribe=(*COMPONENT.subscribe, wire.ANNOUNCE, wire.UNREGISTER, INBOXES,
                       collectors)),
        "syslog": Role(publish=(*COMPONENT.publish, tail), subscribe=COMPONENT.subscribe),
        "alerts": Role(publish=(*COMPONENT.publish, alerts), subscribe=COMPONENT.subscribe),
        "supervisor": Role(publish=(*COMPONENT.publish, DEFAULT_ALERT_SUBJECT),
                           subscribe=COMPONENT.subscribe),
        "operator": Role(subscribe=(tail, alerts, DEFAULT_ALERT_SUBJECT), responses=False),
    }


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: str


@dataclass(frozen=True)
class Cluster:
    """A routed node: its route listener, the peers' route URLs, the routes' own credentials
    (a node only accepts routes that know them, so nobody joins the cluster to read it all)."""

    listen: str                      # host:port of this node's route listener
    peers: Sequence[str]             # host:port of every other node's route listener
    user: str
    password: str
    name: str = "fobs"


def _q(text: str) -> str:
    return json.dumps(text)


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def user_block(user: User, role: Role) -> str:
    # An empty allow list would allow everything; deny ">" says "nothing".
    pub = f"allow: {_list(role.publish)}" if role.publish else 'deny: [">"]'
    sub = f"allow: {_list(role.subscribe)}" if role.subscribe else 'deny: [">"]'
    responses = f"\n      allow_responses: {str(role.responses).lower()}"
    return (f"    {{user: {_q(user.name)}, password: {_q(user.password)}, permissions: {{\n"
            f"      publish: {{{pub}}}\n      subscribe: {{{sub}}}{responses}\n    }}}}")


def server_config(listen: str, monitor: str, users: Sequence[User],
                  cluster: Cluster | None = None) -> str:
    """A nats-server config file: client and monitoring listeners, the users, the routes."""
    by_name = roles()
    text = (f"listen: {_q(listen)}\nhttp: {_q(monitor)}\n"
            "authorization {\n  users = [\n"
            + "\n".join(user_block(u, by_name[u.role]) for u in users) + "\n  ]\n}\n")
    if cluster is not None:
        routes = [f"nats://{cluster.user}:{cluster.password}@{peer}" for peer in cluster.peers]
        text += (f"cluster {{\n  name: {_q(cluster.name)}\n  listen: {_q(cluster.listen)}\n"
                 f"  authorization {{user: {_q(cluster.user)}, "
                 f"password: {_q(cluster.password)}}}\n"
                 f"  routes = {_list(routes)}\n}}\n")
    return text
