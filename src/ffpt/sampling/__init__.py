"""ffpt.sampling"""
