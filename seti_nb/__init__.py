"""seti-nb: helpers behind the workbook's notebooks (data, synthesis, filters, models, training, plots)."""

__version__ = "0.1.0"
