"""The Salesforce B2C Commerce OCAPI connector: category links by PUT or through the batch API,
OAuth client credentials."""

from ._connector import OcapiConnector, OcapiOptions, build_ocapi

__all__ = ["OcapiConnector", "OcapiOptions", "build_ocapi"]
