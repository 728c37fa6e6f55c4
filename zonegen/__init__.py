"""zonegen: Kubernetes Services and EndpointSlices as DNS zones for real secondaries.

The package is layered (STYLE.md): cli -> {watch, ingest, serve, history, demo, runner}
-> {store, project, zonefile, xfr} -> {names, serial} -> model -> errors. This module
imports nothing that does I/O.
"""

__version__ = "0.1.0"
