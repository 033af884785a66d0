"""The admin side: per-day statistics built from the events stream, the dashboard at
``/admin`` and the gauges ``/metrics`` computes when it is scraped.

``stats`` (the consumer) must not import the web side: :mod:`gateway.app` builds it,
and :mod:`gateway.admin.web` imports :mod:`gateway.app`.
"""
