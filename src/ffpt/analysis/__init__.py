"""ffpt.analysis"""
