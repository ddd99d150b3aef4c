"""Operating a deployment: run statistics, health checks, GraphQL helpers (``zquant-ops``)."""
