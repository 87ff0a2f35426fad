"""kyb-cluster: a whole Kybernetes cluster in Docker containers on one machine.

Pure planning (:mod:`config`, :mod:`topology`) is kept apart from the thin
shells that act on Docker (:mod:`docker_ops`) and on the host's routes
(:mod:`network`); :mod:`main` wires them into the ``kyb-cluster`` commands.
:mod:`routes` is the small agent each node container runs to route to the
other nodes' pod CIDRs.
"""
