"""ShelfWatch: shopper actions, products and item counts from overhead store cameras."""

from edge import __version__

__all__ = ["__version__"]
