"""audiofcn: fully convolutional networks for music and audio analysis.

Importing the package does no I/O and imports no heavy optional dependency; subpackages are
imported on use (``audiofcn.io``, ``audiofcn.frontend``, ``audiofcn.models`` ...).
"""

__version__ = "0.1.0"
