"""bulksync: move product catalogues into PIM and commerce APIs, fast, losing no item.

Run a job from Python::

    import bulksync

    report = bulksync.Job.from_toml("job.toml").run()
    if report.failed:
        ...

:class:`Job` is the user's job (a target, inputs, limits); the connector SPI's engine job is
``bulksync.spi.Job``.
"""

import logging

from bulksync.app._api import Job, RunReport
from bulksync.app._api_stream import ResultStream
from bulksync.app.config import Config
from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine.budget import RateBudget
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import (
    Client,
    Connector,
    Done,
    Failed,
    RequestFailed,
    Skipped,
    Stage,
)
from bulksync.spi._errors import (
    AuthError,
    BulksyncError,
    ConfigError,
    ErrorClass,
    ErrorInfo,
    InputFileError,
    QuotaExhausted,
    TargetUnreachable,
    TransportError,
)
from bulksync.spi._http import FilePart, HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, BadRecord, LinkRecord, Origin
from bulksync.store.results import ItemResult

from ._version import __version__

# The exceptions a caller catches show as bulksync.AuthError, not by their private module
# (as httpx does for its public names).
for _error in (
    AuthError,
    BulksyncError,
    ConfigError,
    InputFileError,
    QuotaExhausted,
    TargetUnreachable,
    TransportError,
):
    _error.__module__ = "bulksync"

# A library logs nothing its caller did not configure (no "last resort" stderr output); the
# command line installs its own handlers.
logging.getLogger("bulksync").addHandler(logging.NullHandler())

__all__ = [
    "AssetRecord",
    "AuthError",
    "BadRecord",
    "BulksyncError",
    "Client",
    "Config",
    "ConfigError",
    "Connector",
    "Done",
    "Engine",
    "EngineOptions",
    "ErrorClass",
    "ErrorInfo",
    "Failed",
    "FilePart",
    "HttpRequest",
    "HttpResponse",
    "InputFileError",
    "ItemResult",
    "Job",
    "LinkRecord",
    "Origin",
    "QuotaExhausted",
    "RateBudget",
    "RequestFailed",
    "ResultStream",
    "RetryPolicy",
    "RunReport",
    "Skipped",
    "Stage",
    "TargetUnreachable",
    "TransportError",
    "__version__",
]
