"""bulksync: move product catalogues into PIM and commerce APIs, fast, losing no item."""

from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine.budget import RateBudget
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import (
    Client,
    Connector,
    Done,
    Failed,
    Job,
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
    TransportError,
)
from bulksync.spi._http import FilePart, HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, BadRecord, LinkRecord, Origin
from bulksync.store.results import ItemResult

from ._version import __version__

__all__ = [
    "AssetRecord",
    "AuthError",
    "BadRecord",
    "BulksyncError",
    "Client",
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
    "RateBudget",
    "RequestFailed",
    "RetryPolicy",
    "Skipped",
    "Stage",
    "TransportError",
    "__version__",
]
