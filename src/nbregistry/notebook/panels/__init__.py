"""ipywidgets 8 panels (no custom front-end build): browse, compare, promote and approve.

Widgets only collect input and show results; every decision is the registry's.
"""

from .base import Panel
from .browser import RegistryBrowser
from .compare import ComparisonPanel
from .promotion import PromotionPanel

__all__ = ["ComparisonPanel", "Panel", "PromotionPanel", "RegistryBrowser"]
