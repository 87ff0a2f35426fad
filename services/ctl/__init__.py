"""The ``kyb`` command line: kubectl's verbs (apply, get, describe, delete,
create) over the Kybernetes gRPC API. ``main.main`` is the entry point;
each command family is one module, the printing and describing are pure
modules beside them."""
