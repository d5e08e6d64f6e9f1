"""Imported last by the parser pool's forkserver, after the modules it preloads: what it
loaded is frozen, so the garbage collections of the workers forked from it never scan
those objects, and the pages holding them stay shared instead of being copied into every
worker (gc.freeze's documented use before fork)."""

import gc

gc.freeze()
