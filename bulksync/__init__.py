"""bulksync: move product catalogues into PIM and commerce APIs, fast, losing no item."""

from ._version import __version__
from .budget import RateBudget
from .connector import Client, Connector, Done, Failed, Job, RequestFailed, Skipped, Stage
from .engine import Engine, EngineOptions
from .errors import (
    AuthError,
    BulksyncError,
    ConfigError,
    ErrorClass,
    InputFileError,
    TransportError,
)
from .http import FilePart, HttpRequest, HttpResponse
from .records import AssetRecord, BadRecord, LinkRecord, Origin
from .results import ErrorInfo, ItemResult
from .retry import RetryPolicy

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
