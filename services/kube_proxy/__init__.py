"""kube-proxy in iptables mode: Services and Endpoints in, iptables rules out.

The modules, from pure core to thin shell:

- :mod:`model`: what one Service port and its ready endpoints look like to
  the proxy, converted once from the API objects;
- :mod:`rules`: the rules kube-proxy's iptables proxier writes for them
  (chain names, KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP, masquerade, REJECT);
- :mod:`restore`: the ``iptables-restore --noflush`` text that takes the
  kernel from what was written last to what is wanted, and parsing of
  ``iptables-save`` output (start-up and ``--cleanup``);
- :mod:`iptables`: running iptables-restore / iptables-save, optionally in
  another network namespace;
- :mod:`proxier`: the sync loop (informers, coalescing, resyncs, health);
- :mod:`metrics`: kube-proxy's Prometheus metrics.
"""
