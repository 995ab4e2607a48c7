"""The payment providers, one package each (``sandbox``, ``stripe``), behind the core's port
(:mod:`core.payments`); ``PAYMENTS`` picks one through :mod:`payments.registry`."""
