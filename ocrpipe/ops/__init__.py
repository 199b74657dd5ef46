"""Operator commands beside `ocrpipe run`: doctor, schedule, status.
Imports every wing below it.
"""
