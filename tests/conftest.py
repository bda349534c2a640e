"""Shared fixtures and hypothesis settings."""

from __future__ import annotations

from fuzzing import examples
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dsalab",
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("dsalab")
