"""seti-nb: helpers behind the workbook's notebooks (data, synthesis, filters, models, training, plots)."""

from .workbook import setup

__version__ = "0.1.0"
__all__ = ["setup"]
