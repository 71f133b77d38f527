"""ffpt.simulate"""
