"""The Salesforce B2C Commerce OCAPI connector: category links by PUT or through the batch API,
OAuth client credentials."""

from ._connector import SPEC, OcapiConnector, OcapiOptions

__all__ = ["SPEC", "OcapiConnector", "OcapiOptions"]
