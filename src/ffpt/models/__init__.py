"""ffpt.models"""
