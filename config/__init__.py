"""Settings from the environment and the catalogue of sites, devices and grids."""
