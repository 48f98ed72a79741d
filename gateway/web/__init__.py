"""The dashboard: the web platform's pages as a WSGI app (Open OnDemand, `gw web`)."""
