"""Plausible app names for simulated apps ('amber-otter-api')."""

from __future__ import annotations

import random

_ADJECTIVES = ("amber", "brisk", "calm", "dusty", "eager", "fancy", "gentle", "hollow", "icy",
               "jolly", "keen", "lucky", "misty", "noble", "olive", "proud", "quiet", "rapid",
               "silver", "tidy", "urban", "vivid", "windy", "young", "zesty")
_NOUNS = ("otter", "falcon", "maple", "harbor", "comet", "badger", "cedar", "delta", "ember",
          "fjord", "glacier", "heron", "iris", "juniper", "kestrel", "lynx", "meadow", "nebula",
          "orchid", "pebble", "quartz", "raven", "summit", "tundra", "willow")
_ROLES = ("api", "web", "worker", "ui", "auth", "billing", "search", "cart", "feed", "admin")


def app_name(rng: random.Random) -> str:
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.choice(_ROLES)}"
