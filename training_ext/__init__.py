"""What the four methods plug into the host's ``class_name`` seams, one sub-package each
(cocktail, mining, bypass, hypermod), with the pieces they share in ``common``."""
