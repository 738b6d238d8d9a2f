"""The simulated engine: test everything but the GPU, at the GPU's speed.

Public surface: the profiles (:class:`SimProfile`, :data:`PROFILES`) and the scheduler
that plays one replica (:class:`Scheduler`). The engine class that Ray Serve LLM's
``LLMServer`` takes as ``engine_cls`` is :class:`serving.sim.engine.SimEngine` (a module
of its own, because it imports Ray Serve LLM and vLLM's protocol).
"""

from serving.sim._profiles import PROFILES, OutputLength, SimProfile
from serving.sim._scheduler import Scheduler, SchedulerStats, TooLarge
from serving.sim._text import count_tokens, schema_instance

__all__ = [
    "PROFILES",
    "OutputLength",
    "Scheduler",
    "SchedulerStats",
    "SimProfile",
    "TooLarge",
    "count_tokens",
    "schema_instance",
]
