"""mfprune: pruning at initialization guided by the mean-field theory in :mod:`theory`.

This release ships the command line (``mfprune eoc | phase | demo``) and reporting helpers; models, scorers and
training arrive with the pruning-core and training issues (see docs/).
"""

__version__ = "0.1.0"
