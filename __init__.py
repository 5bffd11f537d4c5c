"""FiftyOne plugin entry point of @clipit/video-summarization."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    # the plugin folder holds the library too, so the plugin works without `pip install`
    sys.path.insert(0, _HERE)

if __package__:  # FiftyOne loads this folder as a package; pytest may import the file alone
    from .operators import register  # noqa: E402,F401
