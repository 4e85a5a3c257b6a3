"""ShelfWatch: shopper actions, products and item counts from overhead store cameras."""

__version__ = "0.1.0"
