"""The home and its configuration: settings, the home's layout and identity, its database,
flavors."""
