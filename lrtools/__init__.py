"""lrtools: exact linear-region geometry of ReLU networks (Zhang & Wu, ICLR 2020).

Data flows one way: datasets -> models -> training -> regions (torch model + point -> float64
H-representation) -> solvers (numpy/cvxpy only) -> analyses (tables) -> plots -> notebooks.
The supported layers are defined in one place (:mod:`lrtools._forward`), and every public
function checks the shapes of its inputs: one input is ``input_shape`` or
``(1, *input_shape)``, a batch is ``(n, *input_shape)``.

The package namespace holds the core: regions (eq. 1-4, 7, 10), walks (eq. 11-13, Fig. 3),
plane slices (Fig. 1, 2, 8) and the exceptions. Solvers, analyses, data sets and plots are
imported from their modules (``lrtools.solvers.insphere``, ``lrtools.analyses.claims``, ...).
"""

from ._forward import SUPPORTED_LAYERS
from .exceptions import (
    CacheError,
    DataFallbackWarning,
    DataUnavailableError,
    InputShapeError,
    LRToolsError,
    RunnerError,
    SolverError,
    SpecError,
    UnsupportedModelError,
)
from .plane import Plane
from .polytope import Polytope
from .regions import (
    Region,
    activation_patterns,
    layer_sizes,
    linear_region,
    logit_jacobian,
    null_space_directions,
    preactivations,
    predict,
)
from .slices import PlanePartition, partition_plane
from .walks import (
    ClassChange,
    Walk,
    count_unique_regions,
    first_class_change,
    first_class_changes,
    surrounding_regions,
    walk,
)

__version__ = "0.1.0"

__all__ = [
    "SUPPORTED_LAYERS",
    "Polytope",
    "Region",
    "linear_region",
    "activation_patterns",
    "preactivations",
    "predict",
    "layer_sizes",
    "logit_jacobian",
    "null_space_directions",
    "Walk",
    "walk",
    "count_unique_regions",
    "surrounding_regions",
    "ClassChange",
    "first_class_change",
    "first_class_changes",
    "Plane",
    "PlanePartition",
    "partition_plane",
    "LRToolsError",
    "SolverError",
    "CacheError",
    "DataUnavailableError",
    "UnsupportedModelError",
    "InputShapeError",
    "RunnerError",
    "SpecError",
    "DataFallbackWarning",
    "__version__",
]
