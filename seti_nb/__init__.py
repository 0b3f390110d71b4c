"""seti-nb: helpers behind the workbook's notebooks (data, synthesis, filters, models, training, plots)."""

__version__ = "0.1.0"
__all__ = ["setup"]


def __getattr__(name: str):
    """`seti_nb.setup`, imported on first use: the `seti-nb` command starts without the notebooks' imports
    (pandas, matplotlib), so its help and argument errors answer at once."""
    if name == "setup":
        from .workbook import setup

        return setup
    raise AttributeError(f"module 'seti_nb' has no attribute {name!r}")
