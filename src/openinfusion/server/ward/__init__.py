"""The simulated ward: pumps from the real engine, each with its own link to the server."""
