"""The online decision service on Ray Serve (and its HTTP layer, usable without Ray).

Import :mod:`sluice.serve.app` for the app builder; this package's ``__init__`` stays
light so that Ray-free code can use :mod:`sluice.serve.http` and
:mod:`sluice.serve.engine`.
"""
