"""Opt-in speed-ups of the models, each named by a model field."""
from .frozen_engine import (ENGINES, EXACT_ENGINES, FrozenEngine,
                            build_fast_frozen_copy, check_engine,
                            default_engine, is_tracing, plain_forward,
                            use_frozen_engine)

__all__ = ['ENGINES', 'EXACT_ENGINES', 'FrozenEngine',
           'build_fast_frozen_copy', 'check_engine', 'default_engine',
           'is_tracing', 'plain_forward', 'use_frozen_engine']
