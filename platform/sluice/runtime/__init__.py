"""Process-level runtime helpers: connecting to Ray."""

from sluice.runtime.ray_cluster import ensure_ray

__all__ = ["ensure_ray"]
