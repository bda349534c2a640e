"""The what-if model: hardware profiles (:class:`HardwareProfile`, TOML files in ``data/hardware/``) and
:func:`predict`, the result a :class:`~dsalab.trial.Trial` would give on a profile's hardware."""

from dsalab.model.predict import predict
from dsalab.model.profile import HardwareProfile

__all__ = ["HardwareProfile", "predict"]
