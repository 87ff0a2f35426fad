"""kube-controller-manager equivalent: a daemon running reconciling controllers (endpoints,
node IPAM, node lifecycle, garbage collector, namespace, replicaset, deployment) against the API
server, each driven by shared informers and a named work queue; only the elected leader runs them."""
