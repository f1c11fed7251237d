"""vramcalc: will this model run on this GPU, with which engine, quant and context."""
__version__ = "0.1.0"
