"""Authorization: who may do what. RBAC (rules granted by bindings) and
the Node authorizer (what a kubelet may touch), asked in turn; the first
to allow wins, and nothing ever denies outright (RBAC is additive)."""
