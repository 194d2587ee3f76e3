"""ipywidgets 8 panels (no custom front-end build): browse, compare, promote and approve.

Widgets only collect input and show results; every decision is the registry's.
"""

from ...domain.extras import require

require("notebook", "ipywidgets")

from .base import Panel  # noqa: E402
from .browser import RegistryBrowser  # noqa: E402
from .compare import ComparisonPanel  # noqa: E402
from .monitoring import MonitoringDashboard  # noqa: E402
from .promotion import PromotionPanel  # noqa: E402

__all__ = ["ComparisonPanel", "MonitoringDashboard", "Panel", "PromotionPanel",
           "RegistryBrowser"]
