"""How people reach gw besides the CLI: Open OnDemand apps and portal sessions, and `gw
--host` over SSH."""
