"""HJ 212 (2005, 2017 and 2025): the codec (pure), SM4 for 2025's encrypted data field, and
the TCP server that real monitors connect to.
"""
