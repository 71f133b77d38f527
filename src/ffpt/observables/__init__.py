"""Pure functions of frames (no plots): radial distribution functions and chemical species."""
