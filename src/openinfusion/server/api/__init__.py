"""REST routers of the management server, one small module per resource."""
