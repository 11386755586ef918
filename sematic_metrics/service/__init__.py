"""The service: the HTTP API, the ClickHouse store and everything that runs
inside ``sematic-metrics serve``. Nothing in the SDK imports from here.

See ARCHITECTURE.md at the project root for which module owns what.
"""
