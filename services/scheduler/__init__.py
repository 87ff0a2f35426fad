"""kube-scheduler, rebuilt: a scheduling queue, a cache with assumed pods,
a plugin framework (filters and scores, one plugin per module), and the
loop that decides, assumes and binds asynchronously.

Pure cores: :mod:`nodeinfo`, :mod:`framework`, :mod:`plugins`,
:mod:`algorithm`, :mod:`queue`, :mod:`cache`, :mod:`config`. The shell:
:mod:`scheduler` (informers in, bindings and events out) and :mod:`main`.
"""
