"""ffpt.training"""
