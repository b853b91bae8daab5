"""The engine: the only code that sleeps, retries or limits concurrency."""

from bulksync.engine._engine import Engine, EngineOptions

__all__ = ["Engine", "EngineOptions"]
