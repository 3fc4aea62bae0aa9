"""imgdedupe: find duplicate and near-duplicate photos, and clean up safely."""

__version__ = "0.1.0"
