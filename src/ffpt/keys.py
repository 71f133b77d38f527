"""Every key a frame carries, as a named constant (``atoms.info`` unless noted).

Units: energies eV, forces eV/A, stress eV/A^3; ``spin`` is the multiplicity 2S+1.
"""

ENERGY = "REF_energy"  # reference total energy, eV
FORCES = "REF_forces"  # reference forces, eV/A (atoms.arrays)
STRESS = "REF_stress"  # reference stress, eV/A^3 (Voigt, 6)
CHARGE = "charge"  # total charge, e
SPIN = "spin"  # spin multiplicity 2S+1
TEACHER = "teacher"  # name and level of the teacher that labelled the frame
CONFIG_TYPE = "config_type"  # how the frame was made, e.g. "md_T300", "nm_T1000", "aimd"
CHANNEL = "channel"  # hydrogen-combustion reaction channel, e.g. "09"
SEED_NAME = "seed_name"  # the seed structure a sampled frame came from
PREDICTED_ENERGY = "MLIP_energy"  # a model's energy written next to the labels by ffpt eval, eV
PREDICTED_FORCES = "MLIP_forces"  # a model's forces written by ffpt eval, eV/A (atoms.arrays)

# A committee's disagreement (calculator results and trajectory frames): energy_std (eV), the per-atom
# forces_std and its maximum forces_std_max (eV/A); see ffpt.models.committee
ENERGY_STD = "energy_std"
FORCES_STD = "forces_std"
FORCES_STD_MAX = "forces_std_max"
UNCERTAINTY_KEYS = (ENERGY_STD, FORCES_STD, FORCES_STD_MAX)
