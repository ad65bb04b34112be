"""commentclf: from a few hundred labelled comments and a large unlabelled pool to a deployable classifier.

Importing the package sets the offline environment first, so that no stage, test or command ever waits
on a model hub that this project never needs (every default model is built from a PyPI wheel).
"""

from commentclf.env import set_offline_env

set_offline_env()

__version__ = "0.1.0"
