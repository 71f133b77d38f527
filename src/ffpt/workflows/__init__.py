"""ffpt.workflows"""
