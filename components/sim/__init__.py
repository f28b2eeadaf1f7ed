"""Shared pieces of the simulated reference components (DEA, router, stager).

Everything here is plain, synchronous and driven by an explicit `now` and a seeded
`random.Random`, so models can be unit-tested with a fake clock and runs are reproducible.
Only `messages` and `ticker` touch asyncio/NATS.
"""
