"""lrtools: exact linear-region geometry of ReLU networks (Zhang & Wu, ICLR 2020).

Data flows one way: datasets -> models -> training -> regions (torch model + point -> float64
H-representation) -> solvers (numpy/cvxpy only) -> analyses (tables) -> plots -> notebooks.
"""

from .polytope import Polytope
from .regions import Region, activation_patterns, linear_region, predict

__version__ = "0.1.0"

__all__ = ["Polytope", "Region", "activation_patterns", "linear_region", "predict", "__version__"]
