"""Zero-shot specimen size from the reference cube, one module per step (and its cube-less reference).

- ``settings``: ``SizeConfig`` (the estimator's settings) and ``SizeEstimate`` (one answer);
- ``background``: background model and object masks;
- ``cube``: the reference cube's shape test, outline refinement and edge;
- ``labels``: paper labels, set aside;
- ``geometry``: box arithmetic and the specimen extent;
- ``estimator``: ``SizeEstimator``, the steps put together;
- ``drawing``: the detections drawn on the photo (galleries);
- ``extent``: the reference without the cube: the largest non-backdrop blob's extent in the
  frame and the power law that maps it to centimetres.

The authors' contour rule, the reference it is compared with, is ``models.size_authors``.
"""

from minbench.models.size.drawing import draw_estimate
from minbench.models.size.estimator import SizeEstimator, as_rgb_uint8
from minbench.models.size.settings import EXTENTS, FALLBACK_CUBE_EDGE_CM, SizeConfig, SizeEstimate

__all__ = ["EXTENTS", "FALLBACK_CUBE_EDGE_CM", "SizeConfig", "SizeEstimate", "SizeEstimator", "as_rgb_uint8", "draw_estimate"]
