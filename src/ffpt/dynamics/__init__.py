"""The one MD engine: ASE integrators stepped with observers, one checkpoint with the RNG state.

Below every stage that runs dynamics: FF-MD sampling (:mod:`ffpt.sampling.md`) and model MD and
metadynamics (:mod:`ffpt.simulate`) both run on it.
"""
