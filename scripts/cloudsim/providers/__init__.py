"""The emulated clouds, one module each. Every module defines a Provider
subclass (scripts/cloudsim/common.py) that names the path prefixes it
answers, its routes, its signature check, its error bodies, its
command-line flags and its credentials. Adding a cloud is one module here
and one line in PROVIDERS; the server, the command line, the fault
injector, the request log and the state file pick it up from this list."""

from .aitems import AiTEMS
from .azure_language import AzureLanguage
from .entra import Entra
from .opensearch import OpenSearch

# Routing asks each in this order whether it serves a path.
PROVIDERS = (
    AiTEMS,
    OpenSearch,
    AzureLanguage,
    Entra,
)
